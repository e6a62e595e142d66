#pragma once
#include "tensor/tensor.h"

namespace kiln {

// Boolean ops on Kiln's booleans, 1/0 in a float dtype (as the comparisons give them): any
// nonzero value (NaN included, as ONNX's Cast to bool reads it) is true. The result is 1/0 in
// the inputs' dtype; the binary ones broadcast. No gradient (piecewise constant): like the
// comparisons, only a trace sees them.
Tensor logical_not(const Tensor& x);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);

}  // namespace kiln
