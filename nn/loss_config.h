#pragma once
#include <memory>

#include "nn/config.h"
#include "nn/losses.h"

namespace kiln::nn {

// Keras loss serialization for the built-in losses: {"class_name": "SparseCategoricalCrossentropy",
// "config": {"name": ..., "from_logits": ...}}. A loss of another class cannot be stored
// (serialize_loss throws naming it): save such a model with include_optimizer = false and
// compile it again after loading.
Config serialize_loss(const Loss& loss);
std::unique_ptr<Loss> deserialize_loss(const Config& serialized);

}  // namespace kiln::nn
