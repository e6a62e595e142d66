#include "optim/rmsprop.h"

#include <cmath>
#include <stdexcept>

#include "tensor/isa_clones.h"

namespace kiln::optim {
namespace {

BaseOptions base_of(const RMSpropOptions& o) {
  return {.schedule = resolve_schedule("RMSprop", o.learning_rate, o.schedule, 1e-3f),
          .weight_decay = o.weight_decay,
          .weight_decay_style = o.pytorch_style ? WeightDecayStyle::l2_in_gradient : WeightDecayStyle::decoupled,
          .exclude_from_weight_decay = o.exclude_from_weight_decay,
          .clip = o.clip};
}

// Both conventions in one loop: denominator = sqrt(v [- a^2] + eps_inside) + eps_outside;
// buf = momentum * buf + into_buf * g / denominator; w -= out_of_buf * buf. Keras puts epsilon
// inside and lr into the buffer; PyTorch puts epsilon outside and lr after the buffer.
struct Placement {
  float eps_inside, eps_outside, into_buf, out_of_buf;
};

template <bool kCentered, bool kMomentum>
KILN_ISA_CLONES void rmsprop_step(float* w, const float* g, float* v, float* avg, float* buf, int64_t n, float rho, float momentum,
                  float lr, Placement p) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    v[i] = rho * v[i] + (1 - rho) * g[i] * g[i];
    float var = v[i];
    if constexpr (kCentered) {
      avg[i] = rho * avg[i] + (1 - rho) * g[i];
      var -= avg[i] * avg[i];
    }
    const float denominator = std::sqrt(var + p.eps_inside) + p.eps_outside;
    if constexpr (kMomentum) {
      buf[i] = momentum * buf[i] + p.into_buf * g[i] / denominator;
      w[i] -= p.out_of_buf * buf[i];
    } else {
      w[i] -= lr * g[i] / denominator;
    }
  }
}

}  // namespace

RMSprop::RMSprop(RMSpropOptions options) : Optimizer("RMSprop", base_of(options)), options_(std::move(options)) {
  if (!(options_.rho >= 0 && options_.rho < 1)) throw std::invalid_argument("RMSprop: rho must be in [0, 1)");
  if (!(options_.momentum >= 0)) throw std::invalid_argument("RMSprop: momentum must be >= 0");
  if (!(options_.epsilon >= 0)) throw std::invalid_argument("RMSprop: epsilon must be >= 0");
}

std::unique_ptr<Optimizer> RMSprop::clone() const {
  RMSpropOptions o = options_;
  o.learning_rate.reset();
  o.schedule = schedule()->clone();
  return std::make_unique<RMSprop>(std::move(o));
}

// Only the slots the options use, in this order: velocity, [average_gradient], [momentum].
std::vector<std::string> RMSprop::slot_names() const {
  std::vector<std::string> names{"velocity"};
  if (options_.centered) names.push_back("average_gradient");
  // Keras's buffer holds lr-scaled steps, PyTorch's unscaled ones: different names keep a
  // checkpoint of one from loading silently into the other.
  if (options_.momentum > 0) names.push_back(options_.pytorch_style ? "momentum_buffer" : "momentum");
  return names;
}

void RMSprop::update(float* w, const float* g, float* const* slots, int64_t n, float lr, int64_t) {
  const RMSpropOptions& o = options_;
  const Placement p = o.pytorch_style ? Placement{0.f, o.epsilon, 1.f, lr} : Placement{o.epsilon, 0.f, lr, 1.f};
  float* v = slots[0];
  float* avg = o.centered ? slots[1] : nullptr;
  float* buf = o.momentum > 0 ? slots[o.centered ? 2 : 1] : nullptr;
  const float rho = o.rho, m = o.momentum;
  if (o.centered && m > 0) {
    rmsprop_step<true, true>(w, g, v, avg, buf, n, rho, m, lr, p);
  } else if (o.centered) {
    rmsprop_step<true, false>(w, g, v, avg, buf, n, rho, m, lr, p);
  } else if (m > 0) {
    rmsprop_step<false, true>(w, g, v, avg, buf, n, rho, m, lr, p);
  } else {
    rmsprop_step<false, false>(w, g, v, avg, buf, n, rho, m, lr, p);
  }
}

}  // namespace kiln::optim
