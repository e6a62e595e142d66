#include "optim/optimizer_config.h"

#include <cmath>
#include <stdexcept>

#include "optim/optimizers.h"

namespace kiln::optim {

using base::ConfigReader;
using Config = base::Json;

namespace {

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

// A built-in optimizer: the options every optimizer shares (put_base, read_base) and its own,
// which put_own and read_own write and read. Serializing reads the options of a clone(), which
// resolves the schedule in force into them.
template <typename T, typename Options, typename PutOwn, typename ReadOwn>
void add_builtin(OptimizerClasses& classes, const char* name, PutOwn put_own, ReadOwn read_own) {
  classes.add<T>(
      name,
      [put_own](const T& opt, Config& c) {
        std::unique_ptr<Optimizer> copy = opt.clone();
        const auto& resolved = static_cast<const T&>(*copy).options();
        put_base(c, opt, resolved);
        put_own(resolved, c);
      },
      [read_own](ConfigReader& r) {
        Options o;
        read_base(r, o);
        read_own(r, o);
        r.finish();
        return std::make_unique<T>(std::move(o));
      });
}

}  // namespace

OptimizerClasses& optimizer_classes() {
  // Never destroyed, so code run from other statics' destructors still finds it.
  static OptimizerClasses* classes = [] {
    auto* c = new OptimizerClasses("optimizer", "kiln::optim::register_optimizer", /*named=*/true);
    add_builtin<SGD, SGDOptions>(
        *c, "SGD", [](const SGDOptions& o, Config& c) { c.set("momentum", o.momentum).set("nesterov", o.nesterov); },
        [](ConfigReader& r, SGDOptions& o) {
          o.momentum = r.real("momentum", o.momentum);
          o.nesterov = r.boolean("nesterov", o.nesterov);
        });
    auto put_adam = [](const AdamOptions& o, Config& c) {
      c.set("beta_1", o.beta_1).set("beta_2", o.beta_2).set("epsilon", o.epsilon).set("amsgrad", o.amsgrad);
    };
    auto read_adam = [](ConfigReader& r, auto& o) {
      o.beta_1 = r.real("beta_1", o.beta_1);
      o.beta_2 = r.real("beta_2", o.beta_2);
      o.epsilon = r.real("epsilon", o.epsilon);
      o.amsgrad = r.boolean("amsgrad", o.amsgrad);
    };
    add_builtin<Adam, AdamOptions>(*c, "Adam", put_adam, read_adam);
    add_builtin<AdamW, AdamWOptions>(*c, "AdamW", put_adam, read_adam);  // AdamW's options() are AdamOptions
    add_builtin<RMSprop, RMSpropOptions>(
        *c, "RMSprop",
        [](const RMSpropOptions& o, Config& c) {
          c.set("rho", o.rho).set("momentum", o.momentum).set("epsilon", o.epsilon).set("centered", o.centered);
        },
        [](ConfigReader& r, RMSpropOptions& o) {
          o.rho = r.real("rho", o.rho);
          o.momentum = r.real("momentum", o.momentum);
          o.epsilon = r.real("epsilon", o.epsilon);
          o.centered = r.boolean("centered", o.centered);
        });
    return c;
  }();
  return *classes;
}

namespace {

float schedule_rate(ConfigReader& r, const char* key) {
  float v = r.real(key);
  if (!std::isfinite(v) || v < 0) r.fail(key, "must be finite and >= 0");
  return v;
}

}  // namespace

ScheduleClasses& schedule_classes() {
  // Never destroyed, so code run from other statics' destructors still finds it.
  static ScheduleClasses* classes = [] {
    auto* c = new ScheduleClasses("learning-rate schedule", "kiln::optim::register_schedule", /*named=*/false);
    c->add<ConstantLR>(
        "ConstantLR", [](const ConstantLR& s, Config& c) { c.set("learning_rate", s.learning_rate()); },
        [](ConfigReader& r) { return std::make_shared<ConstantLR>(schedule_rate(r, "learning_rate")); });
    c->add<StepDecay>(
        "StepDecay",
        [](const StepDecay& s, Config& c) {
          c.set("initial_learning_rate", s.initial()).set("step_size", s.step_size()).set("gamma", s.gamma());
        },
        [](ConfigReader& r) {
          float initial = schedule_rate(r, "initial_learning_rate");
          int64_t step_size = r.integer("step_size", 1, INT64_MAX);
          return std::make_shared<StepDecay>(initial, step_size, schedule_rate(r, "gamma"));
        });
    c->add<CosineDecay>(
        "CosineDecay",
        [](const CosineDecay& s, Config& c) {
          c.set("initial_learning_rate", s.initial()).set("decay_steps", s.decay_steps()).set("alpha", s.alpha());
        },
        [](ConfigReader& r) {
          float initial = schedule_rate(r, "initial_learning_rate");
          int64_t steps = r.integer("decay_steps", 1, INT64_MAX);
          float alpha = r.has("alpha") ? schedule_rate(r, "alpha") : 0.f;
          return std::make_shared<CosineDecay>(initial, steps, alpha);
        });
    c->add<LinearWarmup>(
        "LinearWarmup",
        [](const LinearWarmup& s, Config& c) {
          c.set("warmup_steps", s.warmup_steps()).set("after", serialize_schedule(*s.after()));
        },
        [](ConfigReader& r) {
          int64_t warmup = r.integer("warmup_steps", 0, INT64_MAX);
          return std::make_shared<LinearWarmup>(warmup, deserialize_schedule(r.get("after")));
        });
    return c;
  }();
  return *classes;
}

Config serialize_schedule(const LearningRateSchedule& schedule) { return schedule_classes().serialize(schedule); }

std::shared_ptr<LearningRateSchedule> deserialize_schedule(const Config& serialized) {
  return schedule_classes().deserialize(serialized);
}

Config serialize_optimizer(const Optimizer& opt) { return optimizer_classes().serialize(opt, opt.name()); }

std::unique_ptr<Optimizer> deserialize_optimizer(const Config& serialized) {
  return optimizer_classes().deserialize(serialized);
}

}  // namespace kiln::optim
