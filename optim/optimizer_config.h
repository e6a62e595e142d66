#pragma once
#include <memory>

#include "nn/config.h"
#include "optim/optimizer.h"

namespace kiln::optim {

// Keras optimizer serialization for the built-in optimizers (SGD, Adam, AdamW, RMSprop):
// {"class_name": "Adam", "config": {"name", "learning_rate", "beta_1", ...}} with Keras's
// option names plus Kiln's pytorch_style. learning_rate is the rate in force (a number) or the
// schedule in force ({"class_name": "CosineDecay", "config": {...}}; ConstantLR, StepDecay,
// CosineDecay, LinearWarmup). State (slots, iterations) is not part of a config.
// serialize_optimizer throws std::invalid_argument for another optimizer or schedule class.
nn::Config serialize_optimizer(const Optimizer& optimizer);
std::unique_ptr<Optimizer> deserialize_optimizer(const nn::Config& serialized);

nn::Config serialize_schedule(const LearningRateSchedule& schedule);
std::shared_ptr<LearningRateSchedule> deserialize_schedule(const nn::Config& serialized);

}  // namespace kiln::optim
