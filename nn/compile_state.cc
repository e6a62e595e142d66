#include "nn/compile_state.h"

#include <stdexcept>

#include "nn/config_reader.h"
#include "nn/loss_config.h"
#include "optim/optimizer_config.h"

namespace kiln::nn {

namespace {
constexpr size_t kMaxMetrics = 64;
}

CompileState save_compile_state(const Model& model) {
  optim::Optimizer& opt = model.optimizer();
  Config metrics = Config::list();
  for (const std::string& m : model.metric_names()) metrics.push_back(m);
  CompileState state;
  state.config = Config::map();
  state.config.set("optimizer", optim::serialize_optimizer(opt));
  state.config.set("loss", serialize_loss(model.loss()));
  state.config.set("metrics", metrics);
  state.config.set("iterations", opt.iterations());
  state.slots = opt.slot_state(model.trainable_variables());
  return state;
}

void restore_compile_state(Model& model, const CompileState& state) {
  ConfigReader r(state.config, "compile state");
  std::unique_ptr<optim::Optimizer> opt = optim::deserialize_optimizer(r.get("optimizer"));
  std::unique_ptr<Loss> loss = deserialize_loss(r.get("loss"));
  const Config& metric_list = r.get("metrics");
  int64_t iterations = r.integer("iterations", 0, optim::kMaxIterations);
  r.finish();
  if (!metric_list.is_list() || metric_list.size() > kMaxMetrics) {
    r.fail("metrics", "must be a list of at most " + std::to_string(kMaxMetrics) + " names");
  }
  std::vector<std::string> metrics;
  for (const Config& m : metric_list.items()) {
    if (m.kind() != Config::Kind::string) r.fail("metrics", "must hold metric names");
    metrics.push_back(m.as_string());
  }
  // compile() clones the optimizer; check the slots against the clone before loading them.
  model.compile(*opt, *loss, metrics);
  optim::Optimizer& compiled = model.optimizer();
  compiled.check_slot_state(model.trainable_variables(), state.slots);
  compiled.load_slot_state(model.trainable_variables(), state.slots);
  compiled.set_iterations(iterations);
}

}  // namespace kiln::nn
