#include "nn/loss_config.h"

namespace kiln::nn {
namespace {

// The crossentropies that take only from_logits.
template <typename T>
void add_from_logits_loss(LossClasses& classes, const char* name) {
  classes.add<T>(
      name, [](const T& l, Config& c) { c.set("from_logits", l.from_logits()); },
      [](ConfigReader& r) { return std::make_unique<T>(r.boolean("from_logits", false)); });
}

}  // namespace

LossClasses& loss_classes() {
  // Never destroyed, so code run from other statics' destructors still finds it.
  static LossClasses* classes = [] {
    auto* c = new LossClasses("loss", "kiln::nn::register_loss", /*named=*/true);
    add_from_logits_loss<SparseCategoricalCrossentropy>(*c, "SparseCategoricalCrossentropy");
    c->add<CategoricalCrossentropy>(
        "CategoricalCrossentropy",
        [](const CategoricalCrossentropy& l, Config& c) {
          c.set("from_logits", l.from_logits());
          c.set("label_smoothing", l.label_smoothing());
        },
        [](ConfigReader& r) {
          bool from_logits = r.boolean("from_logits", false);
          float smoothing = r.real("label_smoothing", 0.f);
          if (!(smoothing >= 0 && smoothing <= 1)) r.fail("label_smoothing", "must be in [0, 1]");
          return std::make_unique<CategoricalCrossentropy>(from_logits, smoothing);
        });
    add_from_logits_loss<BinaryCrossentropy>(*c, "BinaryCrossentropy");
    c->add<MeanSquaredError>(
        "MeanSquaredError", [](const MeanSquaredError&, Config&) {},
        [](ConfigReader&) { return std::make_unique<MeanSquaredError>(); });
    return c;
  }();
  return *classes;
}

// Exact classes only: a subclass of a built-in loss would come back as the built-in one.
Config serialize_loss(const Loss& loss) { return loss_classes().serialize(loss, loss.name()); }

std::unique_ptr<Loss> deserialize_loss(const Config& serialized) { return loss_classes().deserialize(serialized); }

}  // namespace kiln::nn
