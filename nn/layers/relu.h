#pragma once
#include <optional>
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

// Keras's ReLU layer: f(x) = max_value for x >= max_value, x for threshold <= x < max_value,
// negative_slope * (x - threshold) otherwise. max_value (none: unbounded), negative_slope and
// threshold must be >= 0. The common forms run as one op: relu, relu6 (max_value 6), clip
// (max_value) and leaky_relu (negative_slope); the general form composes Keras's own steps.
Layer ReLU(std::optional<float> max_value = std::nullopt, float negative_slope = 0.f, float threshold = 0.f,
           const std::string& name = "");

// The function the layer applies (Keras's activations.relu).
Tensor keras_relu(const Tensor& x, std::optional<float> max_value = std::nullopt, float negative_slope = 0.f,
                  float threshold = 0.f);

}  // namespace kiln::nn
