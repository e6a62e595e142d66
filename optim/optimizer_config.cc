#include "optim/optimizer_config.h"

#include <cmath>
#include <stdexcept>

#include "base/registry.h"
#include "optim/optimizers.h"

namespace kiln::optim {

using base::ConfigReader;
using Config = base::Json;

namespace {

using OptimizerClasses = base::ClassRegistry<Optimizer, std::unique_ptr<Optimizer>>;
using ScheduleClasses = base::ClassRegistry<LearningRateSchedule, std::shared_ptr<LearningRateSchedule>>;

constexpr size_t kMaxExcludes = 1024;

// The options every optimizer shares, under Keras's names (0 for "off", where Keras writes
// null). `resolved` comes from clone(), which puts the schedule in force into the options.
template <typename Options>
void put_base(Config& c, const Optimizer& opt, const Options& resolved) {
  if (opt.has_schedule()) {
    c.set("learning_rate", serialize_schedule(*resolved.schedule));
  } else {
    c.set("learning_rate", opt.learning_rate());
  }
  c.set("weight_decay", resolved.weight_decay);
  Config excludes = Config::list();
  for (const std::string& s : resolved.exclude_from_weight_decay) excludes.push_back(s);
  c.set("exclude_from_weight_decay", excludes);
  c.set("clipnorm", resolved.clip.clipnorm);
  c.set("global_clipnorm", resolved.clip.global_clipnorm);
  c.set("clipvalue", resolved.clip.clipvalue);
  c.set("pytorch_style", resolved.pytorch_style);
}

// An absent weight_decay keeps the options' own default (AdamW's is not Adam's); null is
// Keras's None, no decay.
template <typename Options>
void read_base(ConfigReader& r, Options& o) {
  const Config& lr = r.get("learning_rate");
  if (lr.is_map()) {
    o.schedule = deserialize_schedule(lr);
  } else {
    o.learning_rate = r.real("learning_rate");
  }
  if (r.has("weight_decay")) o.weight_decay = r.real("weight_decay", 0.f);
  if (const Config* ex = r.optional("exclude_from_weight_decay")) {
    if (!ex->is_list() || ex->size() > kMaxExcludes) r.fail("exclude_from_weight_decay", "must be a list of names");
    for (const Config& s : ex->items()) {
      if (s.kind() != Config::Kind::string) r.fail("exclude_from_weight_decay", "must hold strings");
      o.exclude_from_weight_decay.push_back(s.as_string());
    }
  }
  o.clip.clipnorm = r.real("clipnorm", 0.f);
  o.clip.global_clipnorm = r.real("global_clipnorm", 0.f);
  o.clip.clipvalue = r.real("clipvalue", 0.f);
  o.pytorch_style = r.boolean("pytorch_style", false);
}

// The options an optimizer was made with, with the schedule in force resolved (clone() puts it
// there).
template <typename T>
auto resolved_options(const T& opt) {
  std::unique_ptr<Optimizer> copy = opt.clone();
  return static_cast<const T&>(*copy).options();
}

template <typename T, typename Options>
void register_adam_family(OptimizerClasses& classes, const char* name) {
  classes.add(
      name, typeid(T),
      [](const Optimizer& opt, Config& c) {
        auto o = resolved_options(static_cast<const T&>(opt));
        put_base(c, opt, o);
        c.set("beta_1", o.beta_1).set("beta_2", o.beta_2).set("epsilon", o.epsilon).set("amsgrad", o.amsgrad);
      },
      [](ConfigReader& r) -> std::unique_ptr<Optimizer> {
        Options o;
        read_base(r, o);
        o.beta_1 = r.real("beta_1", o.beta_1);
        o.beta_2 = r.real("beta_2", o.beta_2);
        o.epsilon = r.real("epsilon", o.epsilon);
        o.amsgrad = r.boolean("amsgrad", o.amsgrad);
        r.finish();
        return std::make_unique<T>(std::move(o));
      });
}

OptimizerClasses& optimizer_classes() {
  // Never destroyed, so code run from other statics' destructors still finds it.
  static OptimizerClasses* classes = [] {
    auto* c = new OptimizerClasses("optimizer", "kiln::optim::register_optimizer", /*named=*/true);
    c->add(
        "SGD", typeid(SGD),
        [](const Optimizer& opt, Config& c) {
          SGDOptions o = resolved_options(static_cast<const SGD&>(opt));
          put_base(c, opt, o);
          c.set("momentum", o.momentum).set("nesterov", o.nesterov);
        },
        [](ConfigReader& r) -> std::unique_ptr<Optimizer> {
          SGDOptions o;
          read_base(r, o);
          o.momentum = r.real("momentum", o.momentum);
          o.nesterov = r.boolean("nesterov", o.nesterov);
          r.finish();
          return std::make_unique<SGD>(std::move(o));
        });
    register_adam_family<Adam, AdamOptions>(*c, "Adam");
    register_adam_family<AdamW, AdamWOptions>(*c, "AdamW");
    c->add(
        "RMSprop", typeid(RMSprop),
        [](const Optimizer& opt, Config& c) {
          RMSpropOptions o = resolved_options(static_cast<const RMSprop&>(opt));
          put_base(c, opt, o);
          c.set("rho", o.rho).set("momentum", o.momentum).set("epsilon", o.epsilon).set("centered", o.centered);
        },
        [](ConfigReader& r) -> std::unique_ptr<Optimizer> {
          RMSpropOptions o;
          read_base(r, o);
          o.rho = r.real("rho", o.rho);
          o.momentum = r.real("momentum", o.momentum);
          o.epsilon = r.real("epsilon", o.epsilon);
          o.centered = r.boolean("centered", o.centered);
          r.finish();
          return std::make_unique<RMSprop>(std::move(o));
        });
    return c;
  }();
  return *classes;
}

float schedule_rate(ConfigReader& r, const char* key) {
  float v = r.real(key);
  if (!std::isfinite(v) || v < 0) r.fail(key, "must be finite and >= 0");
  return v;
}

ScheduleClasses& schedule_classes() {
  // Never destroyed, so code run from other statics' destructors still finds it.
  static ScheduleClasses* classes = [] {
    auto* c = new ScheduleClasses("learning-rate schedule", "kiln::optim::register_schedule", /*named=*/false);
    c->add(
        "ConstantLR", typeid(ConstantLR),
        [](const LearningRateSchedule& s, Config& c) {
          c.set("learning_rate", static_cast<const ConstantLR&>(s).learning_rate());
        },
        [](ConfigReader& r) -> std::shared_ptr<LearningRateSchedule> {
          return std::make_shared<ConstantLR>(schedule_rate(r, "learning_rate"));
        });
    c->add(
        "StepDecay", typeid(StepDecay),
        [](const LearningRateSchedule& schedule, Config& c) {
          auto& s = static_cast<const StepDecay&>(schedule);
          c.set("initial_learning_rate", s.initial()).set("step_size", s.step_size()).set("gamma", s.gamma());
        },
        [](ConfigReader& r) -> std::shared_ptr<LearningRateSchedule> {
          float initial = schedule_rate(r, "initial_learning_rate");
          int64_t step_size = r.integer("step_size", 1, INT64_MAX);
          return std::make_shared<StepDecay>(initial, step_size, schedule_rate(r, "gamma"));
        });
    c->add(
        "CosineDecay", typeid(CosineDecay),
        [](const LearningRateSchedule& schedule, Config& c) {
          auto& s = static_cast<const CosineDecay&>(schedule);
          c.set("initial_learning_rate", s.initial()).set("decay_steps", s.decay_steps()).set("alpha", s.alpha());
        },
        [](ConfigReader& r) -> std::shared_ptr<LearningRateSchedule> {
          float initial = schedule_rate(r, "initial_learning_rate");
          int64_t steps = r.integer("decay_steps", 1, INT64_MAX);
          float alpha = r.has("alpha") ? schedule_rate(r, "alpha") : 0.f;
          return std::make_shared<CosineDecay>(initial, steps, alpha);
        });
    c->add(
        "LinearWarmup", typeid(LinearWarmup),
        [](const LearningRateSchedule& schedule, Config& c) {
          auto& s = static_cast<const LinearWarmup&>(schedule);
          c.set("warmup_steps", s.warmup_steps()).set("after", serialize_schedule(*s.after()));
        },
        [](ConfigReader& r) -> std::shared_ptr<LearningRateSchedule> {
          int64_t warmup = r.integer("warmup_steps", 0, INT64_MAX);
          return std::make_shared<LinearWarmup>(warmup, deserialize_schedule(r.get("after")));
        });
    return c;
  }();
  return *classes;
}

}  // namespace

void register_optimizer(const std::string& class_name, const std::type_info& type, OptimizerToConfig to_config,
                        OptimizerFromConfig from_config) {
  optimizer_classes().add(class_name, type, std::move(to_config), std::move(from_config));
}

std::vector<std::string> registered_optimizer_classes() { return optimizer_classes().names(); }

void register_schedule(const std::string& class_name, const std::type_info& type, ScheduleToConfig to_config,
                       ScheduleFromConfig from_config) {
  schedule_classes().add(class_name, type, std::move(to_config), std::move(from_config));
}

std::vector<std::string> registered_schedule_classes() { return schedule_classes().names(); }

Config serialize_schedule(const LearningRateSchedule& schedule) { return schedule_classes().serialize(schedule); }

std::shared_ptr<LearningRateSchedule> deserialize_schedule(const Config& serialized) {
  return schedule_classes().deserialize(serialized);
}

Config serialize_optimizer(const Optimizer& opt) { return optimizer_classes().serialize(opt, opt.name()); }

std::unique_ptr<Optimizer> deserialize_optimizer(const Config& serialized) {
  return optimizer_classes().deserialize(serialized);
}

}  // namespace kiln::optim
