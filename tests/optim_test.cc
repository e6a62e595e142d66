#include <gtest/gtest.h>

#include <cmath>

#include "autograd/variable.h"
#include "optim/optimizers.h"

namespace kiln {
namespace {

using namespace kiln::optim;

struct Trace {
  std::vector<double> w, g;
};

// Runs 3 steps of opt on w with gradient g_t = w_t * 0.5 + 1 (so the gradient depends on the
// trajectory) and returns the final weights.
std::vector<float> run(Optimizer& opt, std::vector<float> w0) {
  Variable v(Tensor::from_vector(w0, {static_cast<int64_t>(w0.size())}), "w");
  for (int t = 0; t < 3; ++t) {
    auto w = v.value().to_vector();
    std::vector<float> g(w.size());
    for (size_t i = 0; i < w.size(); ++i) g[i] = w[i] * 0.5f + 1.f;
    opt.apply_gradients({Tensor::from_vector(g, v.shape())}, {v});
  }
  EXPECT_EQ(opt.iterations(), 3);
  return v.value().to_vector();
}

template <typename Step>
std::vector<double> reference(std::vector<double> w, Step step) {
  for (int t = 1; t <= 3; ++t) {
    for (size_t i = 0; i < w.size(); ++i) step(w, i, w[i] * 0.5 + 1.0, t);
  }
  return w;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5 + 1e-5 * std::fabs(want[i]));
}

const std::vector<float> kW0 = {0.5f, -1.5f, 2.0f};

TEST(Optimizers, SgdWithMomentumNesterovAndWeightDecay) {
  for (bool nesterov : {false, true}) {
    SGD opt(0.1f, 0.9f, nesterov, 0.01f);
    std::vector<double> buf(3, 0.0);
    auto want = reference({0.5, -1.5, 2.0}, [&](std::vector<double>& w, size_t i, double g, int) {
      double gi = g + 0.01 * w[i];
      buf[i] = 0.9 * buf[i] + gi;
      w[i] -= 0.1 * (nesterov ? gi + 0.9 * buf[i] : buf[i]);
    });
    expect_close(run(opt, kW0), want);
  }
  SGD plain(0.1f);
  expect_close(run(plain, kW0), reference({0.5, -1.5, 2.0}, [](std::vector<double>& w, size_t i, double g, int) {
                 w[i] -= 0.1 * g;
               }));
}

TEST(Optimizers, AdamAndAdamW) {
  for (float wd : {0.f, 0.05f}) {
    std::vector<double> m(3, 0), v(3, 0);
    auto want = reference({0.5, -1.5, 2.0}, [&](std::vector<double>& w, size_t i, double g, int t) {
      w[i] -= 0.01 * wd * w[i];
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.999 * v[i] + 0.001 * g * g;
      double mh = m[i] / (1 - std::pow(0.9, t)), vh = v[i] / (1 - std::pow(0.999, t));
      w[i] -= 0.01 * mh / (std::sqrt(vh) + 1e-7);
    });
    if (wd == 0) {
      Adam opt(0.01f);
      expect_close(run(opt, kW0), want);
    } else {
      AdamW opt(0.01f, wd);
      expect_close(run(opt, kW0), want);
    }
  }
}

TEST(Optimizers, RMSpropPlainAndCenteredWithMomentum) {
  for (bool centered : {false, true}) {
    RMSprop opt(0.01f, 0.9f, 0.5f, 1e-7f, centered);
    std::vector<double> v(3, 0), a(3, 0), mom(3, 0);
    auto want = reference({0.5, -1.5, 2.0}, [&](std::vector<double>& w, size_t i, double g, int) {
      v[i] = 0.9 * v[i] + 0.1 * g * g;
      double denom = v[i];
      if (centered) {
        a[i] = 0.9 * a[i] + 0.1 * g;
        denom -= a[i] * a[i];
      }
      mom[i] = 0.5 * mom[i] + 0.01 * g / (std::sqrt(denom) + 1e-7);
      w[i] -= mom[i];
    });
    expect_close(run(opt, kW0), want);
  }
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
  SGD opt(std::make_shared<StepDecay>(1.f, 1, 0.5f));
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
  ClipOptions clip;
  clip.global_clipnorm = 1.f;
  SGD opt(1.f, 0.f, false, 0.f, clip);
  Variable a(Tensor::zeros({2}), "a"), b(Tensor::zeros({2}), "b");
  opt.apply_gradients({grads[0], grads[1]}, {a, b});
  EXPECT_NEAR(a.value().to_vector()[0], -0.6f, 1e-6);
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
  EXPECT_THROW(SGD(0.1f, 1.5f), std::invalid_argument);
  EXPECT_THROW(SGD(-1.f), std::invalid_argument);
}

TEST(Optimizers, CloneKeepsTheCurrentLearningRate) {
  Adam a(0.1f);
  a.set_learning_rate(0.003f);
  EXPECT_FLOAT_EQ(a.clone()->learning_rate(), 0.003f);  // compile() clones: the change must survive
  SGD s(std::make_shared<StepDecay>(1.f, 1, 0.5f), 0.9f);
  EXPECT_FLOAT_EQ(s.clone()->learning_rate(), 1.f);
  EXPECT_EQ(s.clone()->iterations(), 0);
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
  Variable v2(v.value(), "v2");
  a.apply_gradients({Tensor::ones({2})}, {v});
  b->apply_gradients({Tensor::ones({2})}, {v});  // same slots, same step: same update
  EXPECT_EQ(b->slot_state({v})[0].second.to_vector(), a.slot_state({v})[0].second.to_vector());
}

}  // namespace
}  // namespace kiln
