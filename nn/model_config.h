#pragma once
#include <functional>
#include <memory>
#include <string>

#include "nn/config.h"
#include "nn/model.h"

namespace kiln::nn {

// Models from configs, as Keras's model_from_config. "Functional" and "Sequential" are built
// in; a subclassed model (a C++ class overriding call()) has no graph to rebuild, so its class
// registers a factory, returns that name from class_name(), and (when its constructor takes
// arguments) returns them from config():
//   register_model("TwoTower", [](const Config& c) { return std::make_shared<TwoTower>(c); });
// Registering a model class also registers it as a layer class, so it can nest in other models.
using ModelFactory = std::function<std::shared_ptr<Model>(const Config& config)>;
void register_model(const std::string& class_name, ModelFactory factory);
bool is_model_registered(const std::string& class_name);

// A new model of `class_name` from its config; throws std::invalid_argument naming the class
// and what to register when it is unknown, and naming what is wrong in a bad config.
std::shared_ptr<Model> model_from_config(const std::string& class_name, const Config& config);

// A model's shape and dtype for build() as a config: {"input_shape": [null, ...], "dtype": ...}
// (Keras's build_config), and back; read_input_spec checks ranks and sizes.
Config input_spec_config(const Shape& shape, DType dtype);
std::pair<Shape, DType> read_input_spec(const Config& config, const std::string& owner);
// "float32", "bfloat16", "int8", "uint8", "int32": the Keras dtype names.
std::string keras_dtype_name(DType dtype);

}  // namespace kiln::nn
