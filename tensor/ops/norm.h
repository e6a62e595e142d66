#pragma once
#include "tensor/tensor.h"

namespace kiln {

struct BatchNormOutput {
  Tensor y;
  Tensor batch_mean;      // f32 [C], not differentiated (feeds moving averages)
  Tensor batch_variance;  // f32 [C], biased (divides by the count), as Keras uses it
};

// Channels-last batch normalization over every axis but the last. gamma/beta: f32 [C]
// (x may be bf16; statistics and scale/shift stay f32).
// With fuse_relu, y = relu(batchnorm(x)) in one oneDNN primitive (forward and backward).
BatchNormOutput batch_norm_training(const Tensor& x, const Tensor& gamma, const Tensor& beta, float epsilon = 1e-3f,
                                    bool fuse_relu = false);
// Normalizes with given statistics; gradients flow to x, gamma and beta.
Tensor batch_norm_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                            const Tensor& variance, float epsilon = 1e-3f, bool fuse_relu = false);

}  // namespace kiln
