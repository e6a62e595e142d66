#include "nn/loss_config.h"

#include <stdexcept>
#include <typeinfo>

#include "nn/config_reader.h"

namespace kiln::nn {

Config serialize_loss(const Loss& loss) {
  // Exact classes only: a subclass of a built-in loss would come back as the built-in one.
  const std::type_info& type = typeid(loss);
  Config c = Config::map();
  c.set("name", loss.name());
  std::string class_name;
  if (type == typeid(SparseCategoricalCrossentropy)) {
    class_name = "SparseCategoricalCrossentropy";
    c.set("from_logits", static_cast<const SparseCategoricalCrossentropy&>(loss).from_logits());
  } else if (type == typeid(CategoricalCrossentropy)) {
    auto& l = static_cast<const CategoricalCrossentropy&>(loss);
    class_name = "CategoricalCrossentropy";
    c.set("from_logits", l.from_logits());
    c.set("label_smoothing", l.label_smoothing());
  } else if (type == typeid(BinaryCrossentropy)) {
    class_name = "BinaryCrossentropy";
    c.set("from_logits", static_cast<const BinaryCrossentropy&>(loss).from_logits());
  } else if (type == typeid(MeanSquaredError)) {
    class_name = "MeanSquaredError";
  } else {
    throw std::invalid_argument("the loss '" + loss.name() +
                                "' is not a built-in Keras loss, so it cannot be saved with the model: save with "
                                "include_optimizer = false and compile() again after loading");
  }
  return Config::map().set("class_name", class_name).set("config", c);
}

std::unique_ptr<Loss> deserialize_loss(const Config& serialized) {
  ConfigReader outer(serialized, "loss");
  std::string class_name = outer.string("class_name");
  const Config& config = outer.get("config");
  outer.finish();
  ConfigReader r(config, class_name + " config");
  r.string("name", "");
  std::unique_ptr<Loss> loss;
  if (class_name == "SparseCategoricalCrossentropy") {
    loss = std::make_unique<SparseCategoricalCrossentropy>(r.boolean("from_logits", false));
  } else if (class_name == "CategoricalCrossentropy") {
    bool from_logits = r.boolean("from_logits", false);
    float smoothing = r.real("label_smoothing", 0.f);
    if (!(smoothing >= 0 && smoothing <= 1)) r.fail("label_smoothing", "must be in [0, 1]");
    loss = std::make_unique<CategoricalCrossentropy>(from_logits, smoothing);
  } else if (class_name == "BinaryCrossentropy") {
    loss = std::make_unique<BinaryCrossentropy>(r.boolean("from_logits", false));
  } else if (class_name == "MeanSquaredError") {
    loss = std::make_unique<MeanSquaredError>();
  } else {
    throw std::invalid_argument("unknown loss class '" + class_name +
                                "' (expected SparseCategoricalCrossentropy, CategoricalCrossentropy, "
                                "BinaryCrossentropy or MeanSquaredError)");
  }
  r.finish();
  return loss;
}

}  // namespace kiln::nn
