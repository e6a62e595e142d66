#pragma once
#include <functional>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

#include "base/config_reader.h"
#include "base/json.h"
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
using OptimizerToConfig = std::function<void(const Optimizer& optimizer, base::Json& config)>;
using OptimizerFromConfig = std::function<std::unique_ptr<Optimizer>(base::ConfigReader& config)>;
void register_optimizer(const std::string& class_name, const std::type_info& type, OptimizerToConfig to_config,
                        OptimizerFromConfig from_config);
std::vector<std::string> registered_optimizer_classes();  // sorted

template <typename T>
void register_optimizer(const std::string& class_name, std::function<void(const T&, base::Json&)> to_config,
                        OptimizerFromConfig from_config) {
  register_optimizer(
      class_name, typeid(T),
      [to_config = std::move(to_config)](const Optimizer& o, base::Json& c) { to_config(static_cast<const T&>(o), c); },
      std::move(from_config));
}

using ScheduleToConfig = std::function<void(const LearningRateSchedule& schedule, base::Json& config)>;
using ScheduleFromConfig = std::function<std::shared_ptr<LearningRateSchedule>(base::ConfigReader& config)>;
void register_schedule(const std::string& class_name, const std::type_info& type, ScheduleToConfig to_config,
                       ScheduleFromConfig from_config);
std::vector<std::string> registered_schedule_classes();  // sorted

template <typename T>
void register_schedule(const std::string& class_name, std::function<void(const T&, base::Json&)> to_config,
                       ScheduleFromConfig from_config) {
  register_schedule(
      class_name, typeid(T),
      [to_config = std::move(to_config)](const LearningRateSchedule& s, base::Json& c) {
        to_config(static_cast<const T&>(s), c);
      },
      std::move(from_config));
}

}  // namespace kiln::optim
