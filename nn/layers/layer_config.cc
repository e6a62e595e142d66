#include "nn/layers/layer_config.h"

#include "nn/initializers.h"
#include "nn/layers/activation.h"
#include "nn/policy.h"
#include "tensor/ops/conv.h"

namespace kiln::nn {

BaseLayerConfig read_base_config(ConfigReader& r) {
  BaseLayerConfig b;
  b.name = r.string("name", "");
  if (r.has("name") && (b.name.empty() || b.name.find('\0') != std::string::npos)) {
    r.fail("name", "must be a non-empty string without NUL characters");
  }
  b.trainable = r.boolean("trainable", true);
  b.dtype = r.string("dtype", "");
  if (!b.dtype.empty()) {
    try {
      policy_from_name(b.dtype);
    } catch (const std::exception& e) {
      r.fail("dtype", e.what());
    }
  }
  return b;
}

Layer with_base_config(const Layer& layer, const BaseLayerConfig& base) {
  if (!base.dtype.empty()) layer->set_policy(policy_from_name(base.dtype));
  layer->trainable = base.trainable;
  return layer;
}

std::string read_initializer(ConfigReader& r, const std::string& key, const std::string& fallback) {
  std::string name = r.string(key, fallback);
  try {
    initialize(name, {0}, 1);  // no elements: only the name is checked
  } catch (const std::exception& e) {
    r.fail(key, e.what());
  }
  return name;
}

std::string read_activation(ConfigReader& r, const std::string& key, const std::string& fallback) {
  std::string name = r.string(key, fallback);
  try {
    check_activation_name(name);
  } catch (const std::exception& e) {
    r.fail(key, e.what());
  }
  return name;
}

std::string read_padding(ConfigReader& r, const std::string& fallback) {
  std::string padding = r.string("padding", fallback);
  try {
    padding_from_name(padding);
  } catch (const std::exception& e) {
    r.fail("padding", e.what());
  }
  return padding;
}

void read_data_format(ConfigReader& r) {
  std::string format = r.string("data_format", "channels_last");
  if (format != "channels_last") r.fail("data_format", "must be 'channels_last' (Kiln runs NHWC), got '" + format + "'");
}

bool register_builtin_layer(const std::string& class_name, Layer (*from_config)(const Config&)) {
  register_layer(class_name, from_config);
  return true;
}

}  // namespace kiln::nn
