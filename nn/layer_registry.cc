#include "nn/layer_registry.h"

#include <stdexcept>

#include "base/registry.h"
#include "nn/config_reader.h"

namespace kiln::nn {
namespace {

base::Registry<LayerFactory>& registry() {
  static base::Registry<LayerFactory> r;
  return r;
}

}  // namespace

void register_layer(const std::string& class_name, LayerFactory factory) {
  if (class_name.empty() || !factory) throw std::invalid_argument("register_layer: needs a class name and a factory");
  registry().add(class_name, std::move(factory));
}

bool is_layer_registered(const std::string& class_name) { return registry().contains(class_name); }

std::vector<std::string> registered_layer_classes() { return registry().names(); }

Layer layer_from_config(const std::string& class_name, const Config& config) {
  std::optional<LayerFactory> factory = registry().find(class_name);
  if (!factory) {
    throw std::invalid_argument("unknown layer class '" + class_name +
                                "': register a factory for it with kiln::nn::register_layer(\"" + class_name +
                                "\", factory) before loading (registered: " + registry().joined_names() + ")");
  }
  Layer layer = (*factory)(config);  // outside the lock: a factory may build nested layers
  if (!layer.defined()) throw std::invalid_argument("the factory for layer class '" + class_name + "' returned no layer");
  return layer;
}

Config serialize_layer(const Layer& layer) {
  Config c = Config::map();
  c.set("class_name", layer->class_name());
  c.set("config", layer->config());
  return c;
}

Layer deserialize_layer(const Config& serialized) {
  ConfigReader r(serialized, "serialized layer");
  std::string class_name = r.string("class_name");
  const Config& config = r.get("config");
  r.finish();
  return layer_from_config(class_name, config);
}

}  // namespace kiln::nn
