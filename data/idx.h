#pragma once
#include <string>
#include <string_view>

#include "tensor/tensor.h"

namespace kiln::data {

// Reads an IDX file (the MNIST format), gzip-compressed or not. Element types u8, s8, s32
// and f32 map to Kiln dtypes. Throws std::runtime_error naming the file for a missing,
// truncated or malformed file, data beyond the declared shape, a gzip stream without its
// trailer or bytes after it; memory grows only with data that really decompresses.
Tensor read_idx(const std::string& path);
// The same parser over bytes already in memory (gzip is recognised by its magic number);
// `source` names them in errors (a path).
Tensor parse_idx(std::string_view bytes, const std::string& source);

}  // namespace kiln::data
