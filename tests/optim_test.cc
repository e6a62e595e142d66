// The optimizer API around the update rules: options, schedules, clipping, weight-decay
// exclusions, slot state and the learning-rate setter. The rules themselves are checked
// against Keras's and PyTorch's formulas in keras_optimizer_rules_test.cc.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln.h"

namespace kiln {
namespace {

using namespace kiln::optim;

TEST(Optimizers, OptionsStructsWithKerasDefaults) {
  SGD sgd;
  EXPECT_FLOAT_EQ(sgd.learning_rate(), 0.01f);
  Adam adam;
  EXPECT_FLOAT_EQ(adam.learning_rate(), 1e-3f);
  EXPECT_FLOAT_EQ(adam.options().epsilon, 1e-7f);
  AdamW adamw;
  EXPECT_FLOAT_EQ(adamw.weight_decay(), 0.004f);
  RMSprop rms;
  EXPECT_FLOAT_EQ(rms.options().rho, 0.9f);

  SGD nesterov({.learning_rate = 0.1f, .momentum = 0.9f, .nesterov = true});
  EXPECT_FLOAT_EQ(nesterov.learning_rate(), 0.1f);
  EXPECT_TRUE(nesterov.options().nesterov);
  Adam custom({.learning_rate = 3e-4, .epsilon = 1e-8});
  EXPECT_FLOAT_EQ(custom.options().epsilon, 1e-8f);
  Adam from_float(2e-3f);  // Keras's Adam(2e-3)
  EXPECT_FLOAT_EQ(from_float.learning_rate(), 2e-3f);
}

TEST(Optimizers, RejectsContradictoryOrInvalidOptions) {
  auto cosine = std::make_shared<CosineDecay>(0.1f, 100);
  EXPECT_THROW(SGD({.learning_rate = 0.1f, .schedule = cosine}), std::invalid_argument);  // one would be ignored
  EXPECT_THROW(SGD({.momentum = 1.5f}), std::invalid_argument);
  EXPECT_THROW(SGD({.nesterov = true}), std::invalid_argument);  // nesterov without momentum
  EXPECT_THROW(SGD(-1.f), std::invalid_argument);
  EXPECT_THROW(Adam({.beta_1 = 1.f}), std::invalid_argument);
  EXPECT_THROW(AdamW({.weight_decay = -0.1f}), std::invalid_argument);
  EXPECT_THROW(RMSprop({.rho = 1.f}), std::invalid_argument);
  // Keras allows one clipping mode: which runs first would otherwise change the result.
  EXPECT_THROW(Adam({.clip = {.clipnorm = 1.f, .clipvalue = 0.5f}}), std::invalid_argument);
}

TEST(Optimizers, SchedulesFollowTheStepCount) {
  StepDecay step(1.f, 10, 0.5f);
  EXPECT_FLOAT_EQ(step(0), 1.f);
  EXPECT_FLOAT_EQ(step(25), 0.25f);
  CosineDecay cos(1.f, 100, 0.1f);
  EXPECT_FLOAT_EQ(cos(0), 1.f);
  EXPECT_NEAR(cos(50), 0.55f, 1e-6);
  EXPECT_NEAR(cos(100), 0.1f, 1e-6);
  EXPECT_NEAR(cos(500), 0.1f, 1e-6);
  LinearWarmup warm(4, std::make_shared<ConstantLR>(0.8f));
  EXPECT_FLOAT_EQ(warm(0), 0.2f);
  EXPECT_FLOAT_EQ(warm(3), 0.8f);
  EXPECT_FLOAT_EQ(warm(10), 0.8f);
  SGD opt({.schedule = std::make_shared<StepDecay>(1.f, 1, 0.5f)});
  Variable v(Tensor::from_vector({0.f}, {1}), "w");
  opt.apply_gradients({Tensor::ones({1})}, {v});  // lr 1
  opt.apply_gradients({Tensor::ones({1})}, {v});  // lr 0.5
  EXPECT_FLOAT_EQ(v.value().item(), -1.5f);
  EXPECT_FLOAT_EQ(opt.learning_rate(), 0.25f);
}

TEST(Optimizers, ClipByGlobalNorm) {
  std::vector<Tensor> grads{Tensor::from_vector({3, 0}, {2}), Tensor::from_vector({0, 4}, {2}), Tensor()};
  auto clipped = clip_by_global_norm(grads, 1.f);
  EXPECT_FLOAT_EQ(clipped.global_norm, 5.f);
  EXPECT_NEAR(clipped.grads[0].to_vector()[0], 0.6f, 1e-6);
  EXPECT_NEAR(clipped.grads[1].to_vector()[1], 0.8f, 1e-6);
  EXPECT_FALSE(clipped.grads[2].defined());
  auto unchanged = clip_by_global_norm(grads, 10.f);
  EXPECT_EQ(unchanged.grads[0].to_vector(), grads[0].to_vector());
  SGD opt({.learning_rate = 1.f, .clip = {.global_clipnorm = 1.f}});
  Variable a(Tensor::zeros({2}), "a"), b(Tensor::zeros({2}), "b");
  opt.apply_gradients({grads[0], grads[1]}, {a, b});
  EXPECT_NEAR(a.value().to_vector()[0], -0.6f, 1e-6);
}

TEST(Optimizers, ClipNormAndClipValueLeaveTheCallersGradientAlone) {
  Tensor g = Tensor::from_vector({3, -4}, {2});
  SGD by_norm({.learning_rate = 1.f, .clip = {.clipnorm = 1.f}});
  Variable a(Tensor::zeros({2}), "a");
  by_norm.apply_gradients({g}, {a});
  EXPECT_NEAR(a.value().to_vector()[0], -0.6f, 1e-6);
  EXPECT_NEAR(a.value().to_vector()[1], 0.8f, 1e-6);
  SGD by_value({.learning_rate = 1.f, .clip = {.clipvalue = 0.5f}});
  Variable b(Tensor::zeros({2}), "b");
  by_value.apply_gradients({g}, {b});
  EXPECT_EQ(b.value().to_vector(), (std::vector<float>{-0.5f, 0.5f}));
  EXPECT_EQ(g.to_vector(), (std::vector<float>{3, -4}));
}

TEST(Optimizers, ExcludeFromWeightDecayByName) {
  // Zero gradients: only the decay moves the weights.
  for (bool pytorch_style : {false, true}) {
    SGD opt({.learning_rate = 0.5f,
             .weight_decay = 0.1f,
             .exclude_from_weight_decay = {"bias"},
             .pytorch_style = pytorch_style});
    Variable kernel(Tensor::ones({2}), "dense/kernel"), bias(Tensor::ones({2}), "dense/bias");
    Tensor zero = Tensor::zeros({2});
    opt.apply_gradients({zero, zero}, {kernel, bias});
    EXPECT_FLOAT_EQ(kernel.value().to_vector()[0], 0.95f);
    EXPECT_FLOAT_EQ(bias.value().to_vector()[0], 1.f);
    EXPECT_EQ(zero.to_vector(), (std::vector<float>{0, 0}));  // the L2 term goes to a copy
  }
}

TEST(Optimizers, SkipsUndefinedGradientsAndRejectsMismatches) {
  Adam opt(0.1f);
  Variable a(Tensor::ones({2}), "a"), b(Tensor::ones({3}), "b");
  opt.apply_gradients({Tensor(), Tensor::ones({3})}, {a, b});
  EXPECT_EQ(a.value().to_vector(), (std::vector<float>{1, 1}));
  EXPECT_NE(b.value().to_vector()[0], 1.f);
  try {
    opt.apply_gradients({Tensor::ones({3}), Tensor::ones({3})}, {a, b});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'a'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(opt.apply_gradients({Tensor::ones({2})}, {a, b}), std::invalid_argument);
}

TEST(Optimizers, CloneKeepsOptionsAndTheCurrentLearningRate) {
  Adam a(0.1f);
  a.set_learning_rate(0.003f);
  EXPECT_FLOAT_EQ(a.clone()->learning_rate(), 0.003f);  // compile() clones: the change must survive
  SGD s({.schedule = std::make_shared<StepDecay>(1.f, 1, 0.5f), .momentum = 0.9f});
  EXPECT_FLOAT_EQ(s.clone()->learning_rate(), 1.f);
  EXPECT_EQ(s.clone()->iterations(), 0);
  AdamW w({.learning_rate = 0.01f, .amsgrad = true, .weight_decay = 0.2f, .pytorch_style = true});
  auto wc = w.clone();
  auto* copy = dynamic_cast<AdamW*>(wc.get());
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->name(), "AdamW");
  EXPECT_TRUE(copy->options().amsgrad);
  EXPECT_TRUE(copy->options().pytorch_style);
  EXPECT_FLOAT_EQ(copy->weight_decay(), 0.2f);
}

TEST(Optimizers, LearningRateIsSettableOnlyWithoutASchedule) {
  Adam constant(0.1f);
  EXPECT_FALSE(constant.has_schedule());
  constant.set_learning_rate(0.05f);
  EXPECT_FLOAT_EQ(constant.learning_rate(), 0.05f);
  EXPECT_THROW(constant.set_learning_rate(-1.f), std::invalid_argument);
  // Keras: "This optimizer was created with a LearningRateSchedule ... its learning rate is
  // not settable". Replacing the schedule stays possible, explicitly.
  Adam scheduled({.schedule = std::make_shared<CosineDecay>(0.1f, 10)});
  EXPECT_TRUE(scheduled.has_schedule());
  EXPECT_THROW(scheduled.set_learning_rate(0.05f), std::logic_error);
  EXPECT_FLOAT_EQ(scheduled.learning_rate(), 0.1f);
  scheduled.set_schedule(std::make_shared<ConstantLR>(0.02f));
  EXPECT_FALSE(scheduled.has_schedule());
  EXPECT_FLOAT_EQ(scheduled.learning_rate(), 0.02f);
}

TEST(Optimizers, SlotNamesFollowTheOptions) {
  Variable v(Tensor::from_vector({1, 2}, {2}), "v");
  Tensor g = Tensor::from_vector({0.5f, -0.5f}, {2});
  auto names = [&](Optimizer&& opt) {
    opt.apply_gradients({g}, {v});
    std::vector<std::string> out;
    for (auto& [name, t] : opt.slot_state({v})) out.push_back(name);
    return out;
  };
  using Names = std::vector<std::string>;
  EXPECT_EQ(names(SGD(0.1f)), Names{});
  EXPECT_EQ(names(SGD({.momentum = 0.9f})), Names{"v/velocity"});
  EXPECT_EQ(names(SGD({.momentum = 0.9f, .pytorch_style = true})), Names{"v/momentum_buffer"});
  EXPECT_EQ(names(Adam({.amsgrad = true})), (Names{"v/m", "v/v", "v/v_max"}));
  EXPECT_EQ(names(RMSprop()), Names{"v/velocity"});
  EXPECT_EQ(names(RMSprop({.momentum = 0.5f, .centered = true})),
            (Names{"v/velocity", "v/average_gradient", "v/momentum"}));
}

TEST(Optimizers, SlotStateRoundTrips) {
  Adam a(0.1f);
  Variable v(Tensor::from_vector({1, 2}, {2}), "v");
  a.apply_gradients({Tensor::from_vector({0.5f, -0.5f}, {2})}, {v});
  auto state = a.slot_state({v});
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].first, "v/m");
  auto b = a.clone();
  b->load_slot_state({v}, state);
  b->set_iterations(a.iterations());
  a.apply_gradients({Tensor::ones({2})}, {v});
  b->apply_gradients({Tensor::ones({2})}, {v});  // same slots, same step: same update
  EXPECT_EQ(b->slot_state({v})[0].second.to_vector(), a.slot_state({v})[0].second.to_vector());
  // A Keras-style momentum buffer is not a PyTorch-style one: loading refuses, naming it.
  SGD keras({.momentum = 0.9f}), torch({.momentum = 0.9f, .pytorch_style = true});
  keras.apply_gradients({Tensor::ones({2})}, {v});
  EXPECT_THROW(torch.load_slot_state({v}, keras.slot_state({v})), std::invalid_argument);
}

// A two-class problem one Dense layer learns; enough for fit to run callbacks.
data::Dataset tiny_dataset() {
  std::vector<float> x;
  std::vector<int32_t> y;
  for (int i = 0; i < 32; ++i) {
    x.push_back(i % 2 ? 1.f : -1.f);
    y.push_back(i % 2);
  }
  return data::Dataset::from_tensor_slices(Tensor::from_vector(x, {32, 1}), Tensor::from_int32(y, {32})).batch(8);
}

TEST(LearningRateScheduler, SetsTheRateEachEpochFromEpochAndCurrentRate) {
  nn::Sequential model({nn::Dense(2)});
  model.build({1});
  model.compile(Adam(0.1f), nn::SparseCategoricalCrossentropy(true));
  std::vector<float> seen;
  auto halve = std::make_shared<nn::LearningRateScheduler>([&](int64_t epoch, float lr) {
    seen.push_back(lr);
    return epoch == 0 ? lr : lr / 2;
  });
  nn::History h = model.fit(tiny_dataset(), {.epochs = 3, .callbacks = {halve}, .verbose = 0});
  EXPECT_EQ(seen, (std::vector<float>{0.1f, 0.1f, 0.05f}));
  EXPECT_FLOAT_EQ(model.optimizer().learning_rate(), 0.025f);
  EXPECT_NEAR(h.history["lr"][2], 0.025, 1e-7);
}

TEST(LearningRateScheduler, RefusesAnOptimizerDrivenByASchedule) {
  nn::Sequential model({nn::Dense(2)});
  model.build({1});
  model.compile(Adam({.schedule = std::make_shared<CosineDecay>(0.1f, 100)}), nn::SparseCategoricalCrossentropy(true));
  std::vector<float> before;
  for (const Variable& v : model.trainable_variables()) {
    for (float f : v.value().to_vector()) before.push_back(f);
  }
  auto constant = std::make_shared<nn::LearningRateScheduler>([](int64_t, float) { return 0.01f; });
  try {
    model.fit(tiny_dataset(), {.epochs = 2, .callbacks = {constant}, .verbose = 0});
    FAIL() << "fit replaced a CosineDecay schedule";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("LearningRateSchedule"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(model.optimizer().has_schedule());
  EXPECT_EQ(model.optimizer().iterations(), 0);  // refused before the first step
  std::vector<float> after;
  for (const Variable& v : model.trainable_variables()) {
    for (float f : v.value().to_vector()) after.push_back(f);
  }
  EXPECT_EQ(after, before);
}

}  // namespace
}  // namespace kiln
