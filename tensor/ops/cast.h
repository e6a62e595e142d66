#pragma once
#include "tensor/tensor.h"

namespace kiln {

// Converts to dtype, as Keras's ops.cast.
//   - float -> float (f32 <-> bf16): a oneDNN reorder; bf16 rounds to nearest even.
//     Differentiable: the gradient is cast back.
//   - float -> integer (s8, u8, s32): truncates toward zero, as Keras (tf.cast), PyTorch's
//     .to(int) and ONNX's Cast do: 1.7 -> 1, -1.7 -> -1, 2.5 -> 2, -0.7 -> 0. Where those
//     leave the result undefined, Kiln states it: a value beyond the integer range saturates
//     to the nearest end (300 -> 127 in s8, -inf -> 0 in u8, 3e9 -> 2147483647 in s32) and
//     NaN becomes 0. Rounding to nearest (ties to even) with saturation is quantize_linear's
//     job (tensor/ops/quantized.h), which the quantizer uses.
//   - integer -> integer: exact where the value fits, else saturates (300 s32 -> 255 u8).
//   - integer -> float: exact in f32 up to 2^24; bf16 and larger s32 round to nearest even.
// Integer results have no gradient; the cast is still recorded in a trace.
Tensor cast(const Tensor& x, DType dtype);

}  // namespace kiln
