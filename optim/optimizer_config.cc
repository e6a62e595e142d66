#include "optim/optimizer_config.h"

#include <cmath>
#include <stdexcept>
#include <typeinfo>

#include "nn/config_reader.h"
#include "optim/optimizers.h"

namespace kiln::optim {

using nn::Config;
using nn::ConfigReader;

namespace {

constexpr size_t kMaxExcludes = 1024;

Config named(const std::string& class_name, Config config) {
  return Config::map().set("class_name", class_name).set("config", std::move(config));
}

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

template <typename Options>
void read_base(ConfigReader& r, Options& o) {
  const Config& lr = r.get("learning_rate");
  if (lr.is_map()) {
    o.schedule = deserialize_schedule(lr);
  } else {
    o.learning_rate = r.real("learning_rate");
  }
  o.weight_decay = r.real("weight_decay", o.weight_decay);
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

}  // namespace

Config serialize_schedule(const LearningRateSchedule& schedule) {
  const std::type_info& type = typeid(schedule);
  if (type == typeid(ConstantLR)) {
    return named("ConstantLR", Config::map().set("learning_rate", static_cast<const ConstantLR&>(schedule).learning_rate()));
  }
  if (type == typeid(StepDecay)) {
    auto& s = static_cast<const StepDecay&>(schedule);
    return named("StepDecay",
                 Config::map().set("initial_learning_rate", s.initial()).set("step_size", s.step_size()).set("gamma", s.gamma()));
  }
  if (type == typeid(CosineDecay)) {
    auto& s = static_cast<const CosineDecay&>(schedule);
    return named("CosineDecay", Config::map()
                                    .set("initial_learning_rate", s.initial())
                                    .set("decay_steps", s.decay_steps())
                                    .set("alpha", s.alpha()));
  }
  if (type == typeid(LinearWarmup)) {
    auto& s = static_cast<const LinearWarmup&>(schedule);
    return named("LinearWarmup",
                 Config::map().set("warmup_steps", s.warmup_steps()).set("after", serialize_schedule(*s.after())));
  }
  throw std::invalid_argument(
      "this learning-rate schedule is not a built-in one (ConstantLR, StepDecay, CosineDecay, LinearWarmup), so it "
      "cannot be saved: save with include_optimizer = false and compile() again after loading");
}

std::shared_ptr<LearningRateSchedule> deserialize_schedule(const Config& serialized) {
  ConfigReader outer(serialized, "learning-rate schedule");
  std::string class_name = outer.string("class_name");
  const Config& config = outer.get("config");
  outer.finish();
  ConfigReader r(config, class_name + " config");
  auto rate = [&r](const char* key) {
    float v = r.real(key);
    if (!std::isfinite(v) || v < 0) r.fail(key, "must be finite and >= 0");
    return v;
  };
  std::shared_ptr<LearningRateSchedule> s;
  if (class_name == "ConstantLR") {
    s = std::make_shared<ConstantLR>(rate("learning_rate"));
  } else if (class_name == "StepDecay") {
    float initial = rate("initial_learning_rate");
    int64_t step_size = r.integer("step_size", 1, INT64_MAX);
    s = std::make_shared<StepDecay>(initial, step_size, rate("gamma"));
  } else if (class_name == "CosineDecay") {
    float initial = rate("initial_learning_rate");
    int64_t steps = r.integer("decay_steps", 1, INT64_MAX);
    float alpha = r.has("alpha") ? rate("alpha") : 0.f;
    s = std::make_shared<CosineDecay>(initial, steps, alpha);
  } else if (class_name == "LinearWarmup") {
    int64_t warmup = r.integer("warmup_steps", 0, INT64_MAX);
    s = std::make_shared<LinearWarmup>(warmup, deserialize_schedule(r.get("after")));
  } else {
    throw std::invalid_argument("unknown learning-rate schedule class '" + class_name +
                                "' (expected ConstantLR, StepDecay, CosineDecay or LinearWarmup)");
  }
  r.finish();
  return s;
}

Config serialize_optimizer(const Optimizer& opt) {
  const std::type_info& type = typeid(opt);
  Config c = Config::map();
  c.set("name", opt.name());
  if (type == typeid(Adam) || type == typeid(AdamW)) {
    std::unique_ptr<Optimizer> copy = opt.clone();
    const AdamOptions& o = static_cast<const Adam&>(*copy).options();
    put_base(c, opt, o);
    c.set("beta_1", o.beta_1).set("beta_2", o.beta_2).set("epsilon", o.epsilon).set("amsgrad", o.amsgrad);
    return named(type == typeid(Adam) ? "Adam" : "AdamW", c);
  }
  if (type == typeid(SGD)) {
    std::unique_ptr<Optimizer> copy = opt.clone();
    const SGDOptions& o = static_cast<const SGD&>(*copy).options();
    put_base(c, opt, o);
    c.set("momentum", o.momentum).set("nesterov", o.nesterov);
    return named("SGD", c);
  }
  if (type == typeid(RMSprop)) {
    std::unique_ptr<Optimizer> copy = opt.clone();
    const RMSpropOptions& o = static_cast<const RMSprop&>(*copy).options();
    put_base(c, opt, o);
    c.set("rho", o.rho).set("momentum", o.momentum).set("epsilon", o.epsilon).set("centered", o.centered);
    return named("RMSprop", c);
  }
  throw std::invalid_argument("the optimizer '" + opt.name() +
                              "' is not a built-in one (SGD, Adam, AdamW, RMSprop), so it cannot be saved with the "
                              "model: save with include_optimizer = false and compile() again after loading");
}

std::unique_ptr<Optimizer> deserialize_optimizer(const Config& serialized) {
  ConfigReader outer(serialized, "optimizer");
  std::string class_name = outer.string("class_name");
  const Config& config = outer.get("config");
  outer.finish();
  ConfigReader r(config, class_name + " config");
  r.string("name", "");
  std::unique_ptr<Optimizer> opt;
  if (class_name == "Adam" || class_name == "AdamW") {
    AdamOptions o;
    read_base(r, o);
    o.beta_1 = r.real("beta_1", o.beta_1);
    o.beta_2 = r.real("beta_2", o.beta_2);
    o.epsilon = r.real("epsilon", o.epsilon);
    o.amsgrad = r.boolean("amsgrad", o.amsgrad);
    r.finish();
    if (class_name == "Adam") {
      opt = std::make_unique<Adam>(std::move(o));
    } else {
      AdamWOptions w;
      w.learning_rate = o.learning_rate;
      w.schedule = o.schedule;
      w.beta_1 = o.beta_1;
      w.beta_2 = o.beta_2;
      w.epsilon = o.epsilon;
      w.amsgrad = o.amsgrad;
      if (r.has("weight_decay")) w.weight_decay = o.weight_decay;  // else AdamW's own default
      w.exclude_from_weight_decay = o.exclude_from_weight_decay;
      w.clip = o.clip;
      w.pytorch_style = o.pytorch_style;
      opt = std::make_unique<AdamW>(std::move(w));
    }
  } else if (class_name == "SGD") {
    SGDOptions o;
    read_base(r, o);
    o.momentum = r.real("momentum", o.momentum);
    o.nesterov = r.boolean("nesterov", o.nesterov);
    r.finish();
    opt = std::make_unique<SGD>(std::move(o));
  } else if (class_name == "RMSprop") {
    RMSpropOptions o;
    read_base(r, o);
    o.rho = r.real("rho", o.rho);
    o.momentum = r.real("momentum", o.momentum);
    o.epsilon = r.real("epsilon", o.epsilon);
    o.centered = r.boolean("centered", o.centered);
    r.finish();
    opt = std::make_unique<RMSprop>(std::move(o));
  } else {
    throw std::invalid_argument("unknown optimizer class '" + class_name + "' (expected SGD, Adam, AdamW or RMSprop)");
  }
  return opt;
}

}  // namespace kiln::optim
