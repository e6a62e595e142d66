// The optimizers against their published update rules: Keras 3's by default
// (keras/src/optimizers/{sgd,adam,adamw,rmsprop,base_optimizer}.py), torch.optim's (1.13)
// with pytorch_style. Each rule is re-implemented here in double precision from those sources
// and driven with the learning rate the optimizer reports for each step; 20 steps run with
// gradients at scales 1, 1e-2 and 1e-4, where epsilon's placement starts to matter. Weights
// start at the gradient's scale, so that plain SGD's steps are not lost in rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "optim/optimizers.h"

namespace kiln {
namespace {

using namespace kiln::optim;
using Vec = std::vector<double>;

constexpr int kSteps = 20;
constexpr double kScales[] = {1.0, 1e-2, 1e-4};
const Vec kBase = {0.5, -1.5, 2.0, -0.25};
const size_t kN = kBase.size();
constexpr double kRtol = 1e-5;

// Step t's gradient (t 1-based): its sign changes along t and differs between elements.
std::vector<float> gradient(int t, double scale) {
  std::vector<float> g(kN);
  for (size_t i = 0; i < kN; ++i) g[i] = static_cast<float>(scale * (std::sin(0.9 * t + 1.7 * i + 0.3) + 0.3));
  return g;
}

std::vector<float> initial_weights(double scale) {
  std::vector<float> w(kN);
  for (size_t i = 0; i < kN; ++i) w[i] = static_cast<float>(scale * kBase[i]);
  return w;
}

Vec to_double(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

// One step of a reference rule; w and the rule's own state change in place. lr is this step's
// learning rate, t the 1-based step.
using Step = std::function<void(Vec& w, const Vec& g, double lr, int t)>;

// ---- Keras 3 -------------------------------------------------------------------------------

// base_optimizer.py _apply_weight_decay: variable.assign(variable - variable * wd * lr), before
// update_step, for every optimizer created with a weight_decay.
void keras_weight_decay(Vec& w, double weight_decay, double lr) {
  for (double& x : w) x -= x * weight_decay * lr;
}

// sgd.py update_step.
Step keras_sgd(const SGD& opt) {
  const SGDOptions& o = opt.options();
  const double momentum = o.momentum, wd = o.weight_decay;
  const bool nesterov = o.nesterov;
  return [=, velocity = Vec(kN, 0.0)](Vec& w, const Vec& g, double lr, int) mutable {
    keras_weight_decay(w, wd, lr);
    for (size_t i = 0; i < kN; ++i) {
      if (momentum == 0) {
        w[i] -= g[i] * lr;
        continue;
      }
      velocity[i] = velocity[i] * momentum - g[i] * lr;
      w[i] += nesterov ? velocity[i] * momentum - g[i] * lr : velocity[i];
    }
  };
}

// adam.py update_step (AdamW is Adam with a weight_decay).
Step keras_adam(const Adam& opt) {
  const AdamOptions& o = opt.options();
  const double b1 = o.beta_1, b2 = o.beta_2, eps = o.epsilon, wd = o.weight_decay;
  const bool amsgrad = o.amsgrad;
  return [=, m = Vec(kN, 0.0), v = Vec(kN, 0.0), v_hat = Vec(kN, 0.0)](Vec& w, const Vec& g, double lr,
                                                                      int t) mutable {
    keras_weight_decay(w, wd, lr);
    const double alpha = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    for (size_t i = 0; i < kN; ++i) {
      m[i] += (g[i] - m[i]) * (1 - b1);
      v[i] += (g[i] * g[i] - v[i]) * (1 - b2);
      double vi = v[i];
      if (amsgrad) vi = v_hat[i] = std::max(v_hat[i], v[i]);
      w[i] -= m[i] * alpha / (std::sqrt(vi) + eps);
    }
  };
}

// rmsprop.py update_step.
Step keras_rmsprop(const RMSprop& opt) {
  const RMSpropOptions& o = opt.options();
  const double rho = o.rho, momentum = o.momentum, eps = o.epsilon, wd = o.weight_decay;
  const bool centered = o.centered;
  return [=, v = Vec(kN, 0.0), avg = Vec(kN, 0.0), mom = Vec(kN, 0.0)](Vec& w, const Vec& g, double lr,
                                                                      int) mutable {
    keras_weight_decay(w, wd, lr);
    for (size_t i = 0; i < kN; ++i) {
      v[i] = rho * v[i] + (1 - rho) * g[i] * g[i];
      double denominator = v[i] + eps;
      if (centered) {
        avg[i] = rho * avg[i] + (1 - rho) * g[i];
        denominator = v[i] - avg[i] * avg[i] + eps;
      }
      const double increment = lr * g[i] / std::sqrt(denominator);
      if (momentum > 0) {
        mom[i] = momentum * mom[i] + increment;
        w[i] -= mom[i];
      } else {
        w[i] -= increment;
      }
    }
  };
}

// ---- torch.optim 1.13 (single-tensor paths, dampening 0, maximize off) ---------------------

Vec plus_l2(const Vec& g, const Vec& w, double weight_decay) {
  Vec out = g;
  for (size_t i = 0; i < kN; ++i) out[i] += weight_decay * w[i];
  return out;
}

// sgd.py _single_tensor_sgd.
Step torch_sgd(const SGD& opt) {
  const SGDOptions& o = opt.options();
  const double momentum = o.momentum, wd = o.weight_decay;
  const bool nesterov = o.nesterov;
  return [=, buf = Vec(kN, 0.0)](Vec& w, const Vec& g_in, double lr, int t) mutable {
    Vec g = plus_l2(g_in, w, wd);
    for (size_t i = 0; i < kN; ++i) {
      double d = g[i];
      if (momentum != 0) {
        buf[i] = t == 1 ? d : momentum * buf[i] + d;
        d = nesterov ? d + momentum * buf[i] : buf[i];
      }
      w[i] -= lr * d;
    }
  };
}

// adam.py / adamw.py _single_tensor_adam(w): Adam's weight_decay is L2, AdamW's decoupled.
Step torch_adam(const Adam& opt) {
  const AdamOptions& o = opt.options();
  const double b1 = o.beta_1, b2 = o.beta_2, eps = o.epsilon, wd = o.weight_decay;
  const bool amsgrad = o.amsgrad, adamw = opt.name() == "AdamW";
  return [=, m = Vec(kN, 0.0), v = Vec(kN, 0.0), v_max = Vec(kN, 0.0)](Vec& w, const Vec& g_in, double lr,
                                                                      int t) mutable {
    Vec g = g_in;
    if (adamw) {
      for (double& x : w) x *= 1 - lr * wd;
    } else {
      g = plus_l2(g_in, w, wd);
    }
    const double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
    for (size_t i = 0; i < kN; ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      double vi = v[i];
      if (amsgrad) vi = v_max[i] = std::max(v_max[i], v[i]);
      w[i] -= lr / c1 * m[i] / (std::sqrt(vi) / std::sqrt(c2) + eps);
    }
  };
}

// rmsprop.py _single_tensor_rmsprop (rho is PyTorch's alpha).
Step torch_rmsprop(const RMSprop& opt) {
  const RMSpropOptions& o = opt.options();
  const double alpha = o.rho, momentum = o.momentum, eps = o.epsilon, wd = o.weight_decay;
  const bool centered = o.centered;
  return [=, v = Vec(kN, 0.0), avg = Vec(kN, 0.0), buf = Vec(kN, 0.0)](Vec& w, const Vec& g_in, double lr,
                                                                      int) mutable {
    Vec g = plus_l2(g_in, w, wd);
    for (size_t i = 0; i < kN; ++i) {
      v[i] = alpha * v[i] + (1 - alpha) * g[i] * g[i];
      double denominator;
      if (centered) {
        avg[i] = alpha * avg[i] + (1 - alpha) * g[i];
        denominator = std::sqrt(v[i] - avg[i] * avg[i]) + eps;
      } else {
        denominator = std::sqrt(v[i]) + eps;
      }
      if (momentum > 0) {
        buf[i] = momentum * buf[i] + g[i] / denominator;
        w[i] -= lr * buf[i];
      } else {
        w[i] -= lr * g[i] / denominator;
      }
    }
  };
}

// ---- Driving and comparing ------------------------------------------------------------------

struct Run {
  std::vector<float> weights;
  Vec learning_rates;  // the rate each step used
};

Run run_kiln(Optimizer& opt, double scale) {
  Variable v(Tensor::from_vector(initial_weights(scale), {static_cast<int64_t>(kN)}), "w");
  Run run;
  for (int t = 1; t <= kSteps; ++t) {
    run.learning_rates.push_back(opt.learning_rate());
    opt.apply_gradients({Tensor::from_vector(gradient(t, scale), v.shape())}, {v});
  }
  run.weights = v.value().to_vector();
  return run;
}

Vec run_reference(Step step, const Vec& learning_rates, double scale) {
  Vec w = to_double(initial_weights(scale));
  for (int t = 1; t <= kSteps; ++t) step(w, to_double(gradient(t, scale)), learning_rates[t - 1], t);
  return w;
}

// Largest difference relative to the largest weight (a weight passing near zero has no
// meaningful relative error of its own).
double relative_difference(const Vec& a, const Vec& b) {
  double diff = 0, size = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(a[i] - b[i]));
    size = std::max(size, std::fabs(b[i]));
  }
  return diff / size;
}

std::string show(const Vec& v) {
  std::string s;
  for (double x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return "{" + s + "}";
}

template <typename Options>
struct OptimizerFor;
template <>
struct OptimizerFor<SGDOptions> {
  using type = SGD;
};
template <>
struct OptimizerFor<AdamOptions> {
  using type = Adam;
};
template <>
struct OptimizerFor<AdamWOptions> {
  using type = AdamW;
};
template <>
struct OptimizerFor<RMSpropOptions> {
  using type = RMSprop;
};

// The optimizer made from options follows rule at every gradient scale.
template <typename Options, typename RuleOpt>
void expect_follows(const std::string& name, const Options& options, Step (*rule)(const RuleOpt&)) {
  for (double scale : kScales) {
    SCOPED_TRACE(name + " at gradient scale " + std::to_string(scale));
    typename OptimizerFor<Options>::type opt(options);
    Run got = run_kiln(opt, scale);
    Vec want = run_reference(rule(opt), got.learning_rates, scale);
    EXPECT_LE(relative_difference(to_double(got.weights), want), kRtol)
        << "got " << show(to_double(got.weights)) << ", rule gives " << show(want);
  }
}

TEST(KerasOptimizerRules, SGD) {
  expect_follows("plain", SGDOptions{.learning_rate = 0.1f}, keras_sgd);
  expect_follows("momentum", SGDOptions{.learning_rate = 0.1f, .momentum = 0.9f}, keras_sgd);
  expect_follows("nesterov", SGDOptions{.learning_rate = 0.1f, .momentum = 0.9f, .nesterov = true}, keras_sgd);
  expect_follows("weight_decay", SGDOptions{.learning_rate = 0.1f, .weight_decay = 0.05f}, keras_sgd);
  expect_follows("momentum and weight_decay",
                 SGDOptions{.learning_rate = 0.1f, .momentum = 0.9f, .weight_decay = 0.05f}, keras_sgd);
  // A falling rate separates Keras's velocity (old rates kept) from PyTorch's buffer.
  expect_follows("nesterov under a schedule",
                 SGDOptions{.schedule = std::make_shared<StepDecay>(0.1f, 5, 0.5f), .momentum = 0.9f, .nesterov = true},
                 keras_sgd);
}

TEST(KerasOptimizerRules, AdamAndAdamW) {
  expect_follows("Adam", AdamOptions{.learning_rate = 0.01f}, keras_adam);
  expect_follows("Adam, epsilon 1e-3", AdamOptions{.learning_rate = 0.01f, .epsilon = 1e-3f}, keras_adam);
  expect_follows("Adam amsgrad", AdamOptions{.learning_rate = 0.01f, .amsgrad = true}, keras_adam);
  expect_follows("Adam weight_decay", AdamOptions{.learning_rate = 0.01f, .weight_decay = 0.1f}, keras_adam);
  expect_follows("AdamW", AdamWOptions{.learning_rate = 0.01f, .weight_decay = 0.1f}, keras_adam);
  expect_follows("AdamW default decay under a schedule",
                 AdamWOptions{.schedule = std::make_shared<CosineDecay>(0.01f, kSteps)}, keras_adam);
}

TEST(KerasOptimizerRules, RMSprop) {
  expect_follows("plain", RMSpropOptions{.learning_rate = 0.01f}, keras_rmsprop);
  expect_follows("momentum", RMSpropOptions{.learning_rate = 0.01f, .momentum = 0.5f}, keras_rmsprop);
  expect_follows("centered", RMSpropOptions{.learning_rate = 0.01f, .centered = true}, keras_rmsprop);
  expect_follows("centered with momentum, weight_decay and a schedule",
                 RMSpropOptions{.schedule = std::make_shared<StepDecay>(0.01f, 5, 0.5f),
                                .momentum = 0.5f,
                                .centered = true,
                                .weight_decay = 0.05f},
                 keras_rmsprop);
}

// Final weights from torch.optim 1.13 (float32) for the same gradients, written down once:
//   w = torch.tensor(initial_weights(scale), requires_grad=True); opt = torch.optim.X([w], ...)
//   for t in 1..20: opt.param_groups[0]["lr"] = <the schedule's rate>; w.grad = gradient(t); opt.step()
// One row per gradient scale (1, 1e-2, 1e-4).
using TorchWeights = std::vector<Vec>;

template <typename Options, typename RuleOpt>
void expect_pytorch_style(const std::string& name, const Options& options, Step (*torch_rule)(const RuleOpt&),
                          Step (*keras_rule)(const RuleOpt&), const TorchWeights& torch) {
  expect_follows(name, options, torch_rule);
  bool distinguishable = false;
  for (size_t k = 0; k < std::size(kScales); ++k) {
    const double scale = kScales[k];
    SCOPED_TRACE(name + " against torch.optim at gradient scale " + std::to_string(scale));
    typename OptimizerFor<Options>::type opt(options);
    Run got = run_kiln(opt, scale);
    EXPECT_LE(relative_difference(to_double(got.weights), torch[k]), kRtol)
        << "got " << show(to_double(got.weights)) << ", torch.optim gave " << show(torch[k]);
    Vec torch_rule_weights = run_reference(torch_rule(opt), got.learning_rates, scale);
    EXPECT_LE(relative_difference(torch_rule_weights, torch[k]), kRtol) << "the re-implemented rule strays from torch";
    Vec keras = run_reference(keras_rule(opt), got.learning_rates, scale);
    distinguishable |= relative_difference(keras, torch[k]) > 100 * kRtol;
  }
  EXPECT_TRUE(distinguishable) << name << ": Keras's rule gives the same weights, so this case tests nothing";
}

TEST(KerasOptimizerRules, PytorchStyleReproducesTorchOptim) {
  expect_pytorch_style("SGD momentum, weight_decay as L2",
                       SGDOptions{.learning_rate = 0.1f, .momentum = 0.9f, .weight_decay = 0.05f, .pytorch_style = true},
                       torch_sgd, keras_sgd,
                       {{-3.30614448, -3.15730047, -1.86730552, -3.9647305},
                        {-0.0330614448, -0.031573005, -0.0186730567, -0.0396473072},
                        {-0.00033061445, -0.000315730053, -0.000186730584, -0.00039647313}});
  expect_pytorch_style("SGD nesterov, weight_decay as L2, under a schedule",
                       SGDOptions{.schedule = std::make_shared<StepDecay>(0.1f, 5, 0.5f),
                                  .momentum = 0.9f,
                                  .nesterov = true,
                                  .weight_decay = 0.05f,
                                  .pytorch_style = true},
                       torch_sgd, keras_sgd,
                       {{-1.4179399, -1.92764735, 0.610922515, -2.15100431},
                        {-0.0141793992, -0.0192764755, 0.00610922184, -0.021510046},
                        {-0.000141793993, -0.000192764812, 6.1092258e-05, -0.000215100445}});
  expect_pytorch_style("Adam", AdamOptions{.learning_rate = 0.01f, .epsilon = 1e-8f, .pytorch_style = true},
                       torch_adam, keras_adam,
                       {{0.403702259, -1.55680764, 1.95908082, -0.359009683},
                        {-0.0912976563, -0.071807839, -0.0209188052, -0.111509532},
                        {-0.0962370709, -0.0569500178, -0.0407144502, -0.109019496}});
  expect_pytorch_style("Adam amsgrad, weight_decay as L2",
                       AdamOptions{.learning_rate = 0.01f,
                                   .epsilon = 1e-8f,
                                   .amsgrad = true,
                                   .weight_decay = 0.1f,
                                   .pytorch_style = true},
                       torch_adam, keras_adam,
                       {{0.396294326, -1.51676571, 1.92172492, -0.353996098},
                        {-0.0359300636, -0.0276220292, -0.0393124297, -0.0377393216},
                        {-0.00267340685, -0.000795553089, 0.000511692255, -0.0036688582}});
  expect_pytorch_style("AdamW",
                       AdamWOptions{.learning_rate = 0.01f, .epsilon = 1e-8f, .weight_decay = 0.1f, .pytorch_style = true},
                       torch_adam, keras_adam,
                       {{0.394863218, -1.52662766, 1.91954124, -0.352855951},
                        {-0.0903303027, -0.0710469782, -0.0212331079, -0.110258937},
                        {-0.095171757, -0.0564834103, -0.040636491, -0.107818112}});
  expect_pytorch_style("RMSprop",
                       RMSpropOptions{.learning_rate = 0.01f, .rho = 0.99f, .epsilon = 1e-8f, .pytorch_style = true},
                       torch_rmsprop, keras_rmsprop,
                       {{0.211020738, -1.72580266, 1.79803407, -0.668173194},
                        {-0.283977568, -0.240801245, -0.181966081, -0.420668185},
                        {-0.28876394, -0.225809798, -0.201778024, -0.417700469}});
  expect_pytorch_style("RMSprop centered, momentum, weight_decay as L2, under a schedule",
                       RMSpropOptions{.schedule = std::make_shared<StepDecay>(0.01f, 5, 0.5f),
                                      .rho = 0.99f,
                                      .momentum = 0.5f,
                                      .epsilon = 1e-8f,
                                      .centered = true,
                                      .weight_decay = 0.05f,
                                      .pytorch_style = true},
                       torch_rmsprop, keras_rmsprop,
                       {{0.0842882097, -1.55808556, 1.84893346, -0.868464768},
                        {-0.056425672, -0.0530209802, -0.0815978646, -0.0581884459},
                        {-0.000157026501, -0.000530477322, -0.00104682706, -0.000396241492}});
}

}  // namespace
}  // namespace kiln
