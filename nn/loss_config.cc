#include "nn/loss_config.h"

#include "base/registry.h"

namespace kiln::nn {
namespace {

using LossClasses = base::ClassRegistry<Loss, std::unique_ptr<Loss>>;

// The crossentropies that take only from_logits.
template <typename T>
void add_from_logits_loss(LossClasses& classes, const char* name) {
  classes.add(
      name, typeid(T), [](const Loss& l, Config& c) { c.set("from_logits", static_cast<const T&>(l).from_logits()); },
      [](ConfigReader& r) -> std::unique_ptr<Loss> { return std::make_unique<T>(r.boolean("from_logits", false)); });
}

LossClasses& loss_classes() {
  // Never destroyed, so code run from other statics' destructors still finds it.
  static LossClasses* classes = [] {
    auto* c = new LossClasses("loss", "kiln::nn::register_loss", /*named=*/true);
    add_from_logits_loss<SparseCategoricalCrossentropy>(*c, "SparseCategoricalCrossentropy");
    c->add(
        "CategoricalCrossentropy", typeid(CategoricalCrossentropy),
        [](const Loss& loss, Config& c) {
          auto& l = static_cast<const CategoricalCrossentropy&>(loss);
          c.set("from_logits", l.from_logits());
          c.set("label_smoothing", l.label_smoothing());
        },
        [](ConfigReader& r) -> std::unique_ptr<Loss> {
          bool from_logits = r.boolean("from_logits", false);
          float smoothing = r.real("label_smoothing", 0.f);
          if (!(smoothing >= 0 && smoothing <= 1)) r.fail("label_smoothing", "must be in [0, 1]");
          return std::make_unique<CategoricalCrossentropy>(from_logits, smoothing);
        });
    add_from_logits_loss<BinaryCrossentropy>(*c, "BinaryCrossentropy");
    c->add(
        "MeanSquaredError", typeid(MeanSquaredError), [](const Loss&, Config&) {},
        [](ConfigReader&) -> std::unique_ptr<Loss> { return std::make_unique<MeanSquaredError>(); });
    return c;
  }();
  return *classes;
}

}  // namespace

void register_loss(const std::string& class_name, const std::type_info& type, LossToConfig to_config,
                   LossFromConfig from_config) {
  loss_classes().add(class_name, type, std::move(to_config), std::move(from_config));
}

std::vector<std::string> registered_loss_classes() { return loss_classes().names(); }

// Exact classes only: a subclass of a built-in loss would come back as the built-in one.
Config serialize_loss(const Loss& loss) { return loss_classes().serialize(loss, loss.name()); }

std::unique_ptr<Loss> deserialize_loss(const Config& serialized) { return loss_classes().deserialize(serialized); }

}  // namespace kiln::nn
