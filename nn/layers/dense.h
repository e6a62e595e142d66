#pragma once
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

struct DenseOptions {
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
};

// keras.layers.Dense: y = activation(x @ kernel + bias) over the last axis. A ReLU is fused
// into the oneDNN matmul.
Layer Dense(int64_t units, const std::string& activation = "", const DenseOptions& options = {},
            const std::string& name = "");

}  // namespace kiln::nn
