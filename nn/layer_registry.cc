#include "nn/layer_registry.h"

#include <map>
#include <mutex>
#include <stdexcept>

#include "nn/config_reader.h"

namespace kiln::nn {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, LayerFactory> factories;
};

// Function-local, so layers registering from static initializers in other files find it built.
Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_layer(const std::string& class_name, LayerFactory factory) {
  if (class_name.empty() || !factory) throw std::invalid_argument("register_layer: needs a class name and a factory");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.factories[class_name] = std::move(factory);
}

bool is_layer_registered(const std::string& class_name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.factories.count(class_name) > 0;
}

std::vector<std::string> registered_layer_classes() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> out;
  for (const auto& [name, f] : r.factories) out.push_back(name);
  return out;
}

Layer layer_from_config(const std::string& class_name, const Config& config) {
  LayerFactory factory;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.factories.find(class_name);
    if (it != r.factories.end()) factory = it->second;
  }
  if (!factory) {
    std::string known;
    for (const std::string& n : registered_layer_classes()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown layer class '" + class_name +
                                "': register a factory for it with kiln::nn::register_layer(\"" + class_name +
                                "\", factory) before loading (registered: " + known + ")");
  }
  Layer layer = factory(config);  // outside the lock: a factory may build nested layers
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
