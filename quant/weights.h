#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace kiln::quant {

// Symmetric s8 scales per output channel: channel c along `axis` (negative counts from the
// end: conv kernels are HWIO, so -1; dense kernels are [in, out], so -1 too) gets
// max|w| over every other axis / 127, at least kMinScale (quant/params.h), so an all-zero
// channel gets a usable scale. w is f32 or bf16. Throws std::invalid_argument for another
// dtype, a bad axis, or a NaN/inf weight (naming the channel).
std::vector<float> weight_scales(const Tensor& w, int axis);

// w / scale[c] rounded half to even and saturated to [-127, 127] (symmetric: -128 is left out
// so that negating a weight never overflows), as an s8 tensor of w's shape. Throws
// std::invalid_argument when scales does not have one positive finite entry per channel or a
// weight is NaN/inf.
Tensor quantize_weights(const Tensor& w, int axis, const std::vector<float>& scales);

}  // namespace kiln::quant
