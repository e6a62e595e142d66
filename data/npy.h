#pragma once
#include <string>
#include <string_view>

#include "tensor/tensor.h"

namespace kiln::data {

// NumPy .npy (format 1.0-3.0, C order). Reads <f4, <i4, |u1, |i1 directly; <f8 and <i8 are
// converted to f32 and s32 (range checked); bf16 is written as <f4. The header dict is parsed
// strictly (exactly descr, fortran_order, shape; numpy's space padding and newline), and the
// data must be exactly what the shape needs. Errors are std::runtime_error naming the file.
Tensor read_npy(const std::string& path);
// The same parser over bytes already in memory; `source` names them in errors (a path).
Tensor parse_npy(std::string_view bytes, const std::string& source);
// Written atomically: to a temporary file, then renamed.
void write_npy(const std::string& path, const Tensor& t);

}  // namespace kiln::data
