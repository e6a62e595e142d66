#pragma once
#include "tensor/tensor.h"

namespace kiln {

// where(cond, a, b): a where cond is nonzero, else b, with NumPy broadcasting of all three
// (torch.where, ONNX Where). Kiln's booleans are 1/0 in a float dtype (what the comparisons
// and logical ops give); cond may be f32, bf16 or u8 (0/1, ONNX bool model inputs). a and b
// share one float dtype, the output's. A select, not arithmetic: b = -inf (masked_fill's
// attention mask) stays -inf where chosen and never meets a NaN-making 0 * inf.
// Gradient: to a where cond holds, to b elsewhere (each summed to its shape); none to cond.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

}  // namespace kiln
