#pragma once
#include <functional>
#include <string>
#include <vector>

#include "nn/config.h"
#include "nn/layer.h"

namespace kiln::nn {

// Keras from_config by class name. Every built-in layer registers itself; register yours with
// the name its class_name() returns before loading a model that holds it:
//   register_layer("Scale", [](const Config& c) { return Layer(std::make_shared<ScaleImpl>(c)); });
// A factory throws (std::invalid_argument) for a config it cannot take.
using LayerFactory = std::function<Layer(const Config& config)>;
// Registering a name again replaces its factory.
void register_layer(const std::string& class_name, LayerFactory factory);
bool is_layer_registered(const std::string& class_name);
std::vector<std::string> registered_layer_classes();  // sorted

// A new layer from a config; throws std::invalid_argument naming the class when it is not
// registered (and saying how to register it) or when its factory rejects the config.
Layer layer_from_config(const std::string& class_name, const Config& config);

// {"class_name": ..., "config": ...}, as Keras serializes a layer, and back.
Config serialize_layer(const Layer& layer);
Layer deserialize_layer(const Config& serialized);

}  // namespace kiln::nn
