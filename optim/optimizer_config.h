#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/config_reader.h"
#include "base/json.h"
#include "base/registry.h"
#include "optim/optimizer.h"

namespace kiln::optim {

// Keras optimizer serialization: {"class_name": "Adam", "config": {"name", "learning_rate",
// "beta_1", ...}} with Keras's option names plus Kiln's pytorch_style. learning_rate is the rate
// in force (a number) or the schedule in force ({"class_name": "CosineDecay", "config": {...}}).
// State (slots, iterations) is not part of a config. serialize_optimizer throws
// std::invalid_argument for an optimizer or schedule whose exact class is not registered.
base::Json serialize_optimizer(const Optimizer& optimizer);
std::unique_ptr<Optimizer> deserialize_optimizer(const base::Json& serialized);

base::Json serialize_schedule(const LearningRateSchedule& schedule);
std::shared_ptr<LearningRateSchedule> deserialize_schedule(const base::Json& serialized);

// Optimizer and schedule classes by name, as layers have (nn/layer_registry.h). The built-ins
// register themselves (SGD, Adam, AdamW, RMSprop; ConstantLR, StepDecay, CosineDecay,
// LinearWarmup); register yours to save it with a model and load it back:
//   register_optimizer<Lion>("Lion",
//       [](const Lion& o, base::Json& config) { config.set("beta_1", o.beta_1()); },
//       [](base::ConfigReader& config) { return std::make_unique<Lion>(config.real("beta_1")); });
// to_config adds the class's keys to its config (an optimizer's "name" is there already);
// from_config reads them all (a key left unread is an error). Only the exact class registered
// serializes this way: a subclass would come back as its base. Registering a name again
// replaces it.
using OptimizerClasses = base::ClassRegistry<Optimizer, std::unique_ptr<Optimizer>>;
using ScheduleClasses = base::ClassRegistry<LearningRateSchedule, std::shared_ptr<LearningRateSchedule>>;
OptimizerClasses& optimizer_classes();
ScheduleClasses& schedule_classes();

template <typename T>
void register_optimizer(const std::string& class_name, std::function<void(const T&, base::Json&)> to_config,
                        OptimizerClasses::FromConfig from_config) {
  optimizer_classes().add<T>(class_name, std::move(to_config), std::move(from_config));
}
template <typename T>
void register_schedule(const std::string& class_name, std::function<void(const T&, base::Json&)> to_config,
                       ScheduleClasses::FromConfig from_config) {
  schedule_classes().add<T>(class_name, std::move(to_config), std::move(from_config));
}
inline std::vector<std::string> registered_optimizer_classes() { return optimizer_classes().names(); }  // sorted
inline std::vector<std::string> registered_schedule_classes() { return schedule_classes().names(); }  // sorted

}  // namespace kiln::optim
