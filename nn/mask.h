#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace kiln::nn {

// Keras's masks (the `_keras_mask` a tensor carries). A mask says which steps of a sequence are
// real: an f32 tensor of 1 (keep) and 0 (masked), shaped as its value without the last axis
// ([batch, time] beside [batch, time, features]). f32 rather than Keras's bool so that the
// ops that make and use masks (comparison, multiply, reduce) are the existing recorded ops:
// a traced graph, Graph::run, the inference plan and ONNX export carry masks as ordinary values.
// An undefined mask means "no mask" (every step real).
struct MaskedTensor {
  Tensor value;
  Tensor mask;
};

// The masks of several values, one per value, for layers with several inputs (an undefined
// Tensor where that input has none); true when any is defined.
bool any_mask(const std::vector<Tensor>& masks);

// The mask as 1/0 in `dtype`, shaped to broadcast against its value (a trailing axis of 1):
// what a consumer multiplies the value by.
Tensor mask_for_value(const Tensor& mask, DType dtype);

}  // namespace kiln::nn
