#pragma once
#include "tensor/tensor.h"

namespace kiln {

// Converts to dtype through a oneDNN reorder (bf16 rounds to nearest even; integers round
// and saturate). Differentiable between floating dtypes: the gradient is cast back.
Tensor cast(const Tensor& x, DType dtype);

}  // namespace kiln
