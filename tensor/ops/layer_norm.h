#pragma once
#include "tensor/tensor.h"

namespace kiln {

// Layer normalization over the last axis on oneDNN's layer_normalization primitive:
// y = (x - mean) / sqrt(var + epsilon) * gamma + beta, with mean and the biased variance of
// each row of the last axis (Keras's LayerNormalization(axis=-1)). x: f32 or bf16, rank >= 1;
// gamma and beta: f32 [C] for C = x's last dimension. Statistics are computed in f32 for bf16
// inputs too. Gradients flow to x, gamma and beta (oneDNN's backward primitive; not twice).
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float epsilon = 1e-3f);

}  // namespace kiln
