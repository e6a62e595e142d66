// Configs of optimizers, schedules and losses (a saved model's compile state): each round trips
// to one that computes the same, bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "kiln.h"
#include "nn/loss_config.h"
#include "optim/optimizer_config.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using namespace kiln::optim;
using testing::rand_tensor;

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor ca = a.clone_detached(), cb = b.clone_detached();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

// Ten steps of both optimizers on copies of the same variables, with the same gradients.
void expect_same_updates(Optimizer& a, Optimizer& b) {
  Variable wa(rand_tensor({3, 4}, 1), "w"), wb(rand_tensor({3, 4}, 1), "w");
  Variable ua(rand_tensor({4}, 2), "bias"), ub(rand_tensor({4}, 2), "bias");
  for (int step = 0; step < 10; ++step) {
    std::vector<Tensor> g = {rand_tensor({3, 4}, 10 + step), rand_tensor({4}, 30 + step)};
    a.apply_gradients(g, {wa, ua});
    b.apply_gradients(g, {wb, ub});
  }
  EXPECT_TRUE(same_bits(wa.value(), wb.value()));
  EXPECT_TRUE(same_bits(ua.value(), ub.value()));
  EXPECT_EQ(a.learning_rate(), b.learning_rate());
}

TEST(OptimizerConfig, EveryBuiltInOptimizerRoundTrips) {
  std::vector<std::unique_ptr<Optimizer>> optimizers;
  optimizers.push_back(std::make_unique<SGD>(SGDOptions{.learning_rate = 0.05f, .momentum = 0.9f, .nesterov = true,
                                                        .weight_decay = 1e-2f, .exclude_from_weight_decay = {"bias"}}));
  optimizers.push_back(std::make_unique<SGD>(SGDOptions{.schedule = std::make_shared<StepDecay>(0.1f, 3, 0.5f),
                                                        .clip = {.clipvalue = 0.25f}, .pytorch_style = true}));
  optimizers.push_back(std::make_unique<Adam>(AdamOptions{.learning_rate = 3e-3f, .beta_1 = 0.8f, .epsilon = 1e-6f,
                                                          .amsgrad = true, .clip = {.clipnorm = 1.f}}));
  optimizers.push_back(std::make_unique<Adam>(AdamOptions{
      .schedule = std::make_shared<LinearWarmup>(4, std::make_shared<CosineDecay>(0.01f, 20, 0.1f)),
      .pytorch_style = true}));
  optimizers.push_back(std::make_unique<AdamW>(AdamWOptions{.learning_rate = 1e-3f, .clip = {.global_clipnorm = 2.f}}));
  optimizers.push_back(std::make_unique<RMSprop>(RMSpropOptions{.learning_rate = 1e-2f, .rho = 0.8f, .momentum = 0.5f,
                                                                .centered = true, .weight_decay = 1e-3f}));
  // A learning rate set after construction is the one in force, and the one saved.
  auto changed = std::make_unique<SGD>(SGDOptions{.learning_rate = 0.5f});
  changed->set_learning_rate(0.125f);
  optimizers.push_back(std::move(changed));
  for (const auto& opt : optimizers) {
    Config c = serialize_optimizer(*opt);
    SCOPED_TRACE(c.to_json());
    Config parsed = parse_config_json(c.to_json(), "optimizer");
    std::unique_ptr<Optimizer> copy = deserialize_optimizer(parsed);
    EXPECT_EQ(typeid(*copy), typeid(*opt));
    EXPECT_EQ(serialize_optimizer(*copy), c);
    std::unique_ptr<Optimizer> fresh = opt->clone();
    expect_same_updates(*fresh, *copy);
  }
  Config sgd = serialize_optimizer(SGD(SGDOptions{.learning_rate = 0.5f, .momentum = 0.25f}));
  EXPECT_EQ(sgd.at("class_name").as_string(), "SGD");
  EXPECT_EQ(sgd.at("config").at("learning_rate").as_number(), 0.5);
  EXPECT_EQ(sgd.at("config").at("momentum").as_number(), 0.25);
}

TEST(OptimizerConfig, KerasStyleConfigsLoadWithDefaults) {
  auto opt = deserialize_optimizer(parse_config_json(
      R"({"class_name": "AdamW", "config": {"learning_rate": 0.001, "beta_2": 0.99}})", "x"));
  Config c = serialize_optimizer(*opt);
  EXPECT_EQ(static_cast<float>(c.at("config").at("weight_decay").as_number()), 0.004f);  // AdamW's default
  EXPECT_EQ(static_cast<float>(c.at("config").at("beta_2").as_number()), 0.99f);
  EXPECT_EQ(static_cast<float>(c.at("config").at("epsilon").as_number()), 1e-7f);
}

TEST(OptimizerConfig, BadConfigsAreClearErrors) {
  struct Case {
    std::string json, message;
  };
  std::vector<Case> cases = {
      {R"({"class_name": "Adagrad", "config": {}})", "unknown optimizer class 'Adagrad'"},
      {R"({"class_name": "SGD", "config": {}})", "SGD config has no 'learning_rate'"},
      {R"({"class_name": "SGD", "config": {"learning_rate": -1.0}})", "learning rate must be finite"},
      {R"({"class_name": "SGD", "config": {"learning_rate": 0.1, "nesterov": true}})", "nesterov needs momentum"},
      {R"({"class_name": "Adam", "config": {"learning_rate": 0.1, "beta_1": 1.0}})", "beta_1 and beta_2"},
      {R"({"class_name": "Adam", "config": {"learning_rate": 0.1, "decay": 0.1}})", "unknown key 'decay'"},
      {R"({"class_name": "RMSprop", "config": {"learning_rate": 0.1, "clipnorm": 1.0, "clipvalue": 1.0}})",
       "only one of clipnorm"},
      {R"({"class_name": "SGD", "config": {"learning_rate": {"class_name": "Cyclic", "config": {}}}})",
       "unknown learning-rate schedule class 'Cyclic'"},
      {R"({"class_name": "SGD", "config": {"learning_rate": {"class_name": "StepDecay", "config": )"
       R"({"initial_learning_rate": 0.1, "step_size": 0, "gamma": 0.5}}}})",
       "'step_size' is 0"},
      {R"({"class_name": "SGD", "config": {"learning_rate": {"class_name": "CosineDecay", "config": )"
       R"({"initial_learning_rate": NaN, "decay_steps": 10}}}})",
       "must be finite and >= 0"},
  };
  for (const Case& c : cases) {
    try {
      deserialize_optimizer(parse_config_json(c.json, "case"));
      ADD_FAILURE() << c.json << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << c.json << "\n" << e.what();
    }
  }
}

class Lion : public SGD {
 public:
  Lion() : SGD(0.1f) {}
};

class HalfLinear : public LearningRateSchedule {
 public:
  float operator()(int64_t step) const override { return 1.f / (1 + step); }
  std::shared_ptr<LearningRateSchedule> clone() const override { return std::make_shared<HalfLinear>(); }
};

TEST(OptimizerConfig, OtherClassesSayTheyCannotBeSaved) {
  EXPECT_THROW(serialize_optimizer(Lion()), std::invalid_argument);
  EXPECT_THROW(serialize_optimizer(SGD(SGDOptions{.schedule = std::make_shared<HalfLinear>()})), std::invalid_argument);
}

TEST(LossConfig, EveryBuiltInLossRoundTrips) {
  std::vector<std::unique_ptr<Loss>> losses;
  losses.push_back(std::make_unique<SparseCategoricalCrossentropy>(true));
  losses.push_back(std::make_unique<CategoricalCrossentropy>(false, 0.1f));
  losses.push_back(std::make_unique<BinaryCrossentropy>(true));
  losses.push_back(std::make_unique<MeanSquaredError>());
  Tensor logits = rand_tensor({4, 3}, 5);
  Tensor probs = softmax(logits, -1);
  Tensor sparse = Tensor::from_int32({0, 2, 1, 2}, {4});
  Tensor dense = Tensor::from_vector({1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1}, {4, 3});
  for (const auto& loss : losses) {
    Config c = serialize_loss(*loss);
    SCOPED_TRACE(c.to_json());
    std::unique_ptr<Loss> copy = deserialize_loss(parse_config_json(c.to_json(), "loss"));
    EXPECT_EQ(serialize_loss(*copy), c);
    EXPECT_EQ(copy->name(), loss->name());
    bool is_sparse = dynamic_cast<SparseCategoricalCrossentropy*>(loss.get()) != nullptr;
    const Tensor& y = is_sparse ? sparse : dense;
    const Tensor& p = dynamic_cast<CategoricalCrossentropy*>(loss.get()) ? probs : logits;
    EXPECT_TRUE(same_bits((*copy)(y, p), (*loss)(y, p)));
  }
  EXPECT_THROW(deserialize_loss(parse_config_json(R"({"class_name": "Huber", "config": {}})", "x")), std::invalid_argument);
  EXPECT_THROW(deserialize_loss(parse_config_json(
                   R"({"class_name": "CategoricalCrossentropy", "config": {"label_smoothing": 2.0}})", "x")),
               std::invalid_argument);
}

class Doubled : public MeanSquaredError {};

TEST(LossConfig, OtherClassesSayTheyCannotBeSaved) {
  try {
    serialize_loss(Doubled());
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("include_optimizer = false"), std::string::npos) << e.what();
  }
}

// Classes a user registers save and load like the built-ins (the registries layers have).
class Lookahead : public SGD {
 public:
  explicit Lookahead(int64_t k) : SGD(0.05f), k_(k) {}
  int64_t k() const { return k_; }

 private:
  int64_t k_;
};

class Halving : public LearningRateSchedule {
 public:
  explicit Halving(float initial) : initial_(initial) {}
  float operator()(int64_t step) const override { return initial_ / static_cast<float>(1 << std::min<int64_t>(step, 20)); }
  std::shared_ptr<LearningRateSchedule> clone() const override { return std::make_shared<Halving>(initial_); }
  float initial() const { return initial_; }

 private:
  float initial_;
};

class ScaledSquares : public MeanSquaredError {
 public:
  explicit ScaledSquares(float scale) : scale_(scale) {}
  float scale() const { return scale_; }
  std::string name() const override { return "scaled_squares"; }

 private:
  float scale_;
};

TEST(Registries, RegisteredOptimizersSchedulesAndLossesRoundTrip) {
  register_optimizer<Lookahead>(
      "Lookahead", [](const Lookahead& o, Config& c) { c.set("k", o.k()); },
      [](ConfigReader& r) { return std::make_unique<Lookahead>(r.integer("k", 1, 100)); });
  register_schedule<Halving>(
      "Halving", [](const Halving& s, Config& c) { c.set("initial", s.initial()); },
      [](ConfigReader& r) { return std::make_shared<Halving>(r.real("initial")); });
  register_loss<ScaledSquares>(
      "ScaledSquares", [](const ScaledSquares& l, Config& c) { c.set("scale", l.scale()); },
      [](ConfigReader& r) { return std::make_unique<ScaledSquares>(r.real("scale")); });
  auto listed = [](const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  EXPECT_TRUE(listed(registered_optimizer_classes(), "Lookahead"));
  EXPECT_TRUE(listed(registered_optimizer_classes(), "AdamW"));
  EXPECT_TRUE(listed(registered_schedule_classes(), "Halving"));
  EXPECT_TRUE(listed(registered_loss_classes(), "ScaledSquares"));

  Config opt = serialize_optimizer(Lookahead(5));
  EXPECT_EQ(opt.to_json(), R"({"class_name": "Lookahead", "config": {"name": "SGD", "k": 5}})");
  std::unique_ptr<Optimizer> opt_copy = deserialize_optimizer(parse_config_json(opt.to_json(), "opt"));
  ASSERT_NE(dynamic_cast<Lookahead*>(opt_copy.get()), nullptr);
  EXPECT_EQ(static_cast<Lookahead&>(*opt_copy).k(), 5);
  try {
    deserialize_optimizer(parse_config_json(R"({"class_name": "Lookahead", "config": {"k": 5, "z": 1}})", "x"));
    FAIL() << "an unread key was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("Lookahead config has an unknown key 'z'"), std::string::npos) << e.what();
  }

  SGD scheduled(SGDOptions{.schedule = std::make_shared<Halving>(0.5f)});
  Config sched = serialize_optimizer(scheduled);
  EXPECT_EQ(sched.at("config").at("learning_rate").to_json(), R"({"class_name": "Halving", "config": {"initial": 0.5}})");
  std::unique_ptr<Optimizer> sched_copy = deserialize_optimizer(sched);
  EXPECT_EQ(serialize_optimizer(*sched_copy), sched);
  expect_same_updates(scheduled, *sched_copy);

  Config loss = serialize_loss(ScaledSquares(3.f));
  EXPECT_EQ(loss.to_json(), R"({"class_name": "ScaledSquares", "config": {"name": "scaled_squares", "scale": 3.0}})");
  std::unique_ptr<Loss> loss_copy = deserialize_loss(loss);
  ASSERT_NE(dynamic_cast<ScaledSquares*>(loss_copy.get()), nullptr);
  EXPECT_EQ(static_cast<ScaledSquares&>(*loss_copy).scale(), 3.f);
  // The registries stay exact about types: an unregistered subclass is still refused.
  EXPECT_THROW(serialize_loss(Doubled()), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
