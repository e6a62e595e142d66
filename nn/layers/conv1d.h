#pragma once
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

struct Conv1DOptions {
  int64_t strides = 1;
  std::string padding = "valid";  // "same", or "causal": (kernel_size - 1) * dilation_rate zeros on the left
  int64_t dilation_rate = 1;      // strides and dilation_rate may not both exceed 1 (as in Keras)
  int64_t groups = 1;
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
};

// keras.layers.Conv1D on [N, steps, channels] input: weights "kernel" [kernel_size,
// channels / groups, filters] and "bias" [filters]. Runs as conv2d over [N, 1, steps,
// channels] (causal padding as explicit left pads), with a ReLU fused.
Layer Conv1D(int64_t filters, int64_t kernel_size, const std::string& activation = "", const Conv1DOptions& options = {},
             const std::string& name = "");

}  // namespace kiln::nn
