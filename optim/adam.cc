#include "optim/adam.h"

#include <cmath>
#include <stdexcept>

#include "tensor/isa_clones.h"

namespace kiln::optim {
namespace {

BaseOptions base_of(const std::string& name, const AdamOptions& o, WeightDecayStyle pytorch_decay_style) {
  return {.schedule = resolve_schedule(name, o.learning_rate, o.schedule, 1e-3f),
          .weight_decay = o.weight_decay,
          .weight_decay_style = o.pytorch_style ? pytorch_decay_style : WeightDecayStyle::decoupled,
          .exclude_from_weight_decay = o.exclude_from_weight_decay,
          .clip = o.clip};
}

// AdamOptions and AdamWOptions hold the same fields (only a default differs).
template <typename To, typename From>
To convert_adam_options(const From& o) {
  return {.learning_rate = o.learning_rate,
          .schedule = o.schedule,
          .beta_1 = o.beta_1,
          .beta_2 = o.beta_2,
          .epsilon = o.epsilon,
          .amsgrad = o.amsgrad,
          .weight_decay = o.weight_decay,
          .exclude_from_weight_decay = o.exclude_from_weight_decay,
          .clip = o.clip,
          .pytorch_style = o.pytorch_style};
}

// w -= alpha * m / (sqrt(v) + eps). PyTorch's lr/c1 * m / (sqrt(v)/sqrt(c2) + eps) is the same
// expression with eps * sqrt(c2) in place of eps, so both conventions share this loop.
template <bool kAmsgrad>
KILN_ISA_CLONES void adam_step(float* w, const float* g, float* m, float* v, float* v_max, int64_t n, float b1, float b2, float alpha,
               float eps) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    m[i] += (1 - b1) * (g[i] - m[i]);
    v[i] += (1 - b2) * (g[i] * g[i] - v[i]);
    float vi = v[i];
    if constexpr (kAmsgrad) {
      vi = v_max[i] > vi ? v_max[i] : vi;
      v_max[i] = vi;
    }
    w[i] -= alpha * m[i] / (std::sqrt(vi) + eps);
  }
}

}  // namespace

Adam::Adam(AdamOptions options) : Adam("Adam", std::move(options), WeightDecayStyle::l2_in_gradient) {}

Adam::Adam(std::string name, AdamOptions options, WeightDecayStyle pytorch_decay_style)
    : Optimizer(name, base_of(name, options, pytorch_decay_style)), options_(std::move(options)) {
  const float b1 = options_.beta_1, b2 = options_.beta_2;
  if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) {
    throw std::invalid_argument(this->name() + ": beta_1 and beta_2 must be in [0, 1)");
  }
  if (!(options_.epsilon >= 0)) throw std::invalid_argument(this->name() + ": epsilon must be >= 0");
}

std::unique_ptr<Optimizer> Adam::clone() const {
  AdamOptions o = options_;
  o.learning_rate.reset();
  o.schedule = schedule()->clone();
  return std::make_unique<Adam>(std::move(o));
}

std::vector<std::string> Adam::slot_names() const {
  if (options_.amsgrad) return {"m", "v", "v_max"};
  return {"m", "v"};
}

void Adam::update(float* w, const float* g, float* const* slots, int64_t n, float lr, int64_t step) {
  const double t = static_cast<double>(step);
  const double c1 = 1 - std::pow(static_cast<double>(options_.beta_1), t);
  const double c2 = 1 - std::pow(static_cast<double>(options_.beta_2), t);
  const float alpha = static_cast<float>(lr * std::sqrt(c2) / c1);
  const float eps = static_cast<float>(options_.pytorch_style ? options_.epsilon * std::sqrt(c2) : options_.epsilon);
  const float b1 = options_.beta_1, b2 = options_.beta_2;
  if (options_.amsgrad) {
    adam_step<true>(w, g, slots[0], slots[1], slots[2], n, b1, b2, alpha, eps);
  } else {
    adam_step<false>(w, g, slots[0], slots[1], nullptr, n, b1, b2, alpha, eps);
  }
}

AdamW::AdamW(AdamWOptions options) : Adam("AdamW", convert_adam_options<AdamOptions>(options), WeightDecayStyle::decoupled) {}

std::unique_ptr<Optimizer> AdamW::clone() const {
  AdamWOptions o = convert_adam_options<AdamWOptions>(options_);
  o.learning_rate.reset();
  o.schedule = schedule()->clone();
  return std::make_unique<AdamW>(std::move(o));
}

}  // namespace kiln::optim
