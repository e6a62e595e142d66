#pragma once
// Reference tensors that a generator script (Keras, PyTorch) wrote as nested JSON lists.
#include "base/json.h"
#include "tensor/tensor.h"

namespace kiln::testing {

// A nested list of numbers as an f32 tensor, its shape read off the nesting (an empty list
// ends the shape there).
Tensor tensor_of_json(const base::Json& j);

}  // namespace kiln::testing
