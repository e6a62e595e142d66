#include "optim/optimizers.h"

#include <cmath>
#include <stdexcept>

namespace kiln::optim {
namespace {
std::shared_ptr<LearningRateSchedule> constant(float lr) {
  if (!(lr >= 0)) throw std::invalid_argument("learning rate must be >= 0, got " + std::to_string(lr));
  return std::make_shared<ConstantLR>(lr);
}
constexpr int64_t kParallelThreshold = 1 << 14;
}  // namespace

SGD::SGD(float lr, float momentum, bool nesterov, float weight_decay, ClipOptions clip)
    : SGD(constant(lr), momentum, nesterov, weight_decay, clip) {}

SGD::SGD(std::shared_ptr<LearningRateSchedule> lr, float momentum, bool nesterov, float weight_decay, ClipOptions clip)
    : Optimizer("SGD", std::move(lr), clip), momentum_(momentum), weight_decay_(weight_decay), nesterov_(nesterov) {
  if (momentum < 0 || momentum >= 1) throw std::invalid_argument("SGD: momentum must be in [0, 1)");
  if (nesterov && momentum == 0) throw std::invalid_argument("SGD: nesterov needs momentum > 0");
}

std::unique_ptr<Optimizer> SGD::clone() const {
  return std::make_unique<SGD>(schedule()->clone(), momentum_, nesterov_, weight_decay_, clip_options());
}

std::vector<std::string> SGD::slot_names() const {
  if (momentum_ > 0) return {"momentum"};
  return {};
}

void SGD::update(float* w, const float* g, const std::vector<float*>& slots, int64_t n, float lr, int64_t) {
  const float m = momentum_, wd = weight_decay_;
  if (m == 0) {
#pragma omp parallel for simd if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) w[i] -= lr * (g[i] + wd * w[i]);
    return;
  }
  float* b = slots[0];
  const bool nesterov = nesterov_;
#pragma omp parallel for simd if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    float gi = g[i] + wd * w[i];
    b[i] = m * b[i] + gi;
    w[i] -= lr * (nesterov ? gi + m * b[i] : b[i]);
  }
}

Adam::Adam(float lr, float beta_1, float beta_2, float epsilon, ClipOptions clip)
    : Adam("Adam", constant(lr), beta_1, beta_2, epsilon, 0.f, clip) {}

Adam::Adam(std::shared_ptr<LearningRateSchedule> lr, float beta_1, float beta_2, float epsilon, ClipOptions clip)
    : Adam("Adam", std::move(lr), beta_1, beta_2, epsilon, 0.f, clip) {}

Adam::Adam(std::string name, std::shared_ptr<LearningRateSchedule> lr, float beta_1, float beta_2, float epsilon,
           float weight_decay, ClipOptions clip)
    : Optimizer(std::move(name), std::move(lr), clip),
      beta_1_(beta_1),
      beta_2_(beta_2),
      epsilon_(epsilon),
      weight_decay_(weight_decay) {
  if (beta_1 < 0 || beta_1 >= 1 || beta_2 < 0 || beta_2 >= 1) {
    throw std::invalid_argument(this->name() + ": betas must be in [0, 1)");
  }
}

std::unique_ptr<Optimizer> Adam::clone() const {
  return std::make_unique<Adam>(schedule()->clone(), beta_1_, beta_2_, epsilon_, clip_options());
}

std::vector<std::string> Adam::slot_names() const { return {"m", "v"}; }

void Adam::update(float* w, const float* g, const std::vector<float*>& slots, int64_t n, float lr, int64_t step) {
  float* m = slots[0];
  float* v = slots[1];
  const float b1 = beta_1_, b2 = beta_2_, eps = epsilon_, decay = lr * weight_decay_;
  const float c1 = 1.f - static_cast<float>(std::pow(b1, static_cast<double>(step)));
  const float c2 = 1.f - static_cast<float>(std::pow(b2, static_cast<double>(step)));
  const float step_size = lr / c1, inv_sqrt_c2 = 1.f / std::sqrt(c2);
#pragma omp parallel for simd if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    w[i] -= decay * w[i];
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    w[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_c2 + eps);
  }
}

AdamW::AdamW(float lr, float weight_decay, float beta_1, float beta_2, float epsilon, ClipOptions clip)
    : Adam("AdamW", constant(lr), beta_1, beta_2, epsilon, weight_decay, clip) {}

AdamW::AdamW(std::shared_ptr<LearningRateSchedule> lr, float weight_decay, float beta_1, float beta_2, float epsilon,
             ClipOptions clip)
    : Adam("AdamW", std::move(lr), beta_1, beta_2, epsilon, weight_decay, clip) {}

std::unique_ptr<Optimizer> AdamW::clone() const {
  return std::make_unique<AdamW>(schedule()->clone(), weight_decay_, beta_1_, beta_2_, epsilon_, clip_options());
}

RMSprop::RMSprop(float lr, float rho, float momentum, float epsilon, bool centered, ClipOptions clip)
    : RMSprop(constant(lr), rho, momentum, epsilon, centered, clip) {}

RMSprop::RMSprop(std::shared_ptr<LearningRateSchedule> lr, float rho, float momentum, float epsilon, bool centered,
                 ClipOptions clip)
    : Optimizer("RMSprop", std::move(lr), clip), rho_(rho), momentum_(momentum), epsilon_(epsilon), centered_(centered) {
  if (rho < 0 || rho >= 1) throw std::invalid_argument("RMSprop: rho must be in [0, 1)");
}

std::unique_ptr<Optimizer> RMSprop::clone() const {
  return std::make_unique<RMSprop>(schedule()->clone(), rho_, momentum_, epsilon_, centered_, clip_options());
}

std::vector<std::string> RMSprop::slot_names() const { return {"velocity", "average_gradient", "momentum"}; }

void RMSprop::update(float* w, const float* g, const std::vector<float*>& slots, int64_t n, float lr, int64_t) {
  float* v = slots[0];
  float* avg = slots[1];
  float* mom = slots[2];
  const float rho = rho_, eps = epsilon_, m = momentum_;
  const bool centered = centered_;
#pragma omp parallel for simd if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    v[i] = rho * v[i] + (1 - rho) * g[i] * g[i];
    float denom = v[i];
    if (centered) {
      avg[i] = rho * avg[i] + (1 - rho) * g[i];
      denom -= avg[i] * avg[i];
    }
    float inc = lr * g[i] / (std::sqrt(denom) + eps);
    if (m > 0) {
      mom[i] = m * mom[i] + inc;
      inc = mom[i];
    }
    w[i] -= inc;
  }
}

}  // namespace kiln::optim
