#pragma once
#include <string>

#include "tensor/tensor.h"

namespace kiln::nn {

// Keras initializers by name: glorot_uniform, glorot_normal, he_normal, he_uniform,
// lecun_normal, orthogonal, zeros, ones. Fans follow Keras: for a kernel [..., in, out] the receptive
// field (product of the leading dims) multiplies both.
Tensor initialize(const std::string& name, const Shape& shape, uint64_t seed = 0);

}  // namespace kiln::nn
