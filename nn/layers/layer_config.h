#pragma once
// What the built-in layers share when they read their configs (Keras from_config).
#include <string>

#include "nn/config_reader.h"
#include "nn/layer.h"
#include "nn/layer_registry.h"

namespace kiln::nn {

// The attributes LayerImpl::config() writes for every layer.
struct BaseLayerConfig {
  std::string name;  // empty: a fresh unique name
  bool trainable = true;
  std::string dtype;  // a policy name; empty: the global policy
};
BaseLayerConfig read_base_config(ConfigReader& r);
// Applies the policy and the trainable flag; returns the layer.
Layer with_base_config(const Layer& layer, const BaseLayerConfig& base);

// Names checked against what the layers accept, so a bad file fails at load, not mid-fit.
std::string read_initializer(ConfigReader& r, const std::string& key, const std::string& fallback);
std::string read_activation(ConfigReader& r, const std::string& key, const std::string& fallback);
std::string read_padding(ConfigReader& r, const std::string& fallback);
// Kiln runs channels_last (NHWC) only.
void read_data_format(ConfigReader& r);

// For static registration in the layer files: `const bool registered = register_builtin(...)`.
bool register_builtin_layer(const std::string& class_name, Layer (*from_config)(const Config&));

}  // namespace kiln::nn
