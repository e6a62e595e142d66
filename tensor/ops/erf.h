#pragma once
#include "tensor/tensor.h"

namespace kiln {

// The Gauss error function, element-wise (torch.erf, ONNX Erf), f32 or bf16 (computed in f32,
// rounded once). Not an EltwiseKind: oneDNN 2.6 has erf only inside gelu_erf, so this is
// Kiln's own kernel (std::erf). Gradient: 2/sqrt(pi) * exp(-x^2).
Tensor erf(const Tensor& x);

}  // namespace kiln
