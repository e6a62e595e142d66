#pragma once
// Small weightless layers.
#include <cstdint>
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

// Zeroes a fraction `rate` of the inputs in training and scales the rest by 1/(1-rate).
// Masks are drawn from (seed, training step), so a resumed run draws the same masks.
Layer Dropout(float rate, uint64_t seed = 0, const std::string& name = "");
// [N, ...] -> [N, prod(...)]
Layer Flatten(const std::string& name = "");
// y = x * scale + offset in the compute dtype; accepts integer (u8) images.
Layer Rescaling(float scale, float offset = 0.f, const std::string& name = "");
// Add is a merge layer: nn/layers/merge.h.

}  // namespace kiln::nn
