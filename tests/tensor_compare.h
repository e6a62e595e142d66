#pragma once
// Comparing tensors in tests.
#include "tensor/tensor.h"

namespace kiln::testing {

// The largest |a - b| over all elements, compared in f32 (any float dtype). Different shapes
// fail the test (naming both) and give infinity; so does a NaN on one side only, which a plain
// std::max over the differences would skip.
float max_abs_diff(const Tensor& a, const Tensor& b);

// Same shape, dtype and bytes (views compared by their dense copies): "bit for bit", as a save/
// load or a trace promises; unlike ==, it tells -0 from 0 and equates identical NaNs.
bool bitwise_equal(const Tensor& a, const Tensor& b);

}  // namespace kiln::testing
