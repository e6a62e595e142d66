#pragma once
#include <string>

#include "tensor/tensor.h"

namespace kiln::data {

// Reads an IDX file (the MNIST format), gzip-compressed or not. Element types u8, s8, s32
// and f32 map to Kiln dtypes. Throws std::runtime_error naming the file for a missing,
// truncated or malformed file.
Tensor read_idx(const std::string& path);

}  // namespace kiln::data
