#pragma once
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

struct BatchNormalizationOptions {
  float momentum = 0.99f;
  float epsilon = 1e-3f;
  bool center = true;  // learn beta
  bool scale = true;   // learn gamma
};

// keras.layers.BatchNormalization over the last (channel) axis. In training it normalizes with
// batch statistics and updates the moving averages; in inference it uses the moving averages.
// Parameters and statistics stay f32 under mixed precision.
Layer BatchNormalization(const BatchNormalizationOptions& options = {}, const std::string& name = "");

}  // namespace kiln::nn
