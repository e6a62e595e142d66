#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/registry.h"
#include "nn/config.h"
#include "nn/config_reader.h"
#include "nn/losses.h"

namespace kiln::nn {

// Keras loss serialization: {"class_name": "SparseCategoricalCrossentropy", "config": {"name":
// ..., "from_logits": ...}}. A loss whose exact class is not registered cannot be stored
// (serialize_loss throws naming it): register it, or save such a model with
// include_optimizer = false and compile it again after loading.
Config serialize_loss(const Loss& loss);
std::unique_ptr<Loss> deserialize_loss(const Config& serialized);

// Loss classes by name, as layers have (nn/layer_registry.h). The built-ins register
// themselves (SparseCategoricalCrossentropy, CategoricalCrossentropy, BinaryCrossentropy,
// MeanSquaredError); register yours to save it with a model:
//   register_loss<Huber>("Huber", [](const Huber& l, Config& c) { c.set("delta", l.delta()); },
//                        [](ConfigReader& c) { return std::make_unique<Huber>(c.real("delta", 1.f)); });
// to_config adds the class's keys after "name"; from_config reads them all (a key left unread is
// an error). Registering a name again replaces it.
using LossClasses = base::ClassRegistry<Loss, std::unique_ptr<Loss>>;
LossClasses& loss_classes();

template <typename T>
void register_loss(const std::string& class_name, std::function<void(const T&, Config&)> to_config,
                   LossClasses::FromConfig from_config) {
  loss_classes().add<T>(class_name, std::move(to_config), std::move(from_config));
}
inline std::vector<std::string> registered_loss_classes() { return loss_classes().names(); }  // sorted

}  // namespace kiln::nn
