#pragma once
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

// keras.layers.Masking: a timestep whose features all equal mask_value is padding. The output
// is the input with those timesteps zeroed, and carries a mask (nn/mask.h) of shape
// [batch, time] that is 0 there, for the layers after it. An incoming mask is replaced.
Layer Masking(float mask_value = 0.f, const std::string& name = "");

}  // namespace kiln::nn
