#include "optim/sgd.h"

#include <stdexcept>

#include "tensor/isa_clones.h"

namespace kiln::optim {
namespace {

BaseOptions base_of(const SGDOptions& o) {
  return {.schedule = resolve_schedule("SGD", o.learning_rate, o.schedule, 0.01f),
          .weight_decay = o.weight_decay,
          .weight_decay_style = o.pytorch_style ? WeightDecayStyle::l2_in_gradient : WeightDecayStyle::decoupled,
          .exclude_from_weight_decay = o.exclude_from_weight_decay,
          .clip = o.clip};
}

// Both conventions in one loop: buf = m * buf + scale_g * g, then w += scale_buf * buf
// (+ scale_g2 * g for nesterov). Keras: scale_g = -lr, scale_buf = 1 (nesterov: m, and
// -lr * g). PyTorch: scale_g = 1, scale_buf = -lr (nesterov: -lr * m, and -lr * g).
struct MomentumScales {
  float buf_g, w_buf, w_g;
};

KILN_ISA_CLONES void plain_step(float* w, const float* g, int64_t n, float lr) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) w[i] -= lr * g[i];
}

template <bool kNesterov>
KILN_ISA_CLONES void momentum_step(float* w, const float* g, float* buf, int64_t n, float m, MomentumScales s) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    buf[i] = m * buf[i] + s.buf_g * g[i];
    if constexpr (kNesterov) {
      w[i] += s.w_buf * buf[i] + s.w_g * g[i];
    } else {
      w[i] += s.w_buf * buf[i];
    }
  }
}

}  // namespace

SGD::SGD(SGDOptions options) : Optimizer("SGD", base_of(options)), options_(std::move(options)) {
  const float m = options_.momentum;
  if (!(m >= 0 && m <= 1)) throw std::invalid_argument("SGD: momentum must be in [0, 1], got " + std::to_string(m));
  if (options_.nesterov && m == 0) throw std::invalid_argument("SGD: nesterov needs momentum > 0");
}

std::unique_ptr<Optimizer> SGD::clone() const {
  SGDOptions o = options_;
  o.learning_rate.reset();
  o.schedule = schedule()->clone();
  return std::make_unique<SGD>(std::move(o));
}

std::vector<std::string> SGD::slot_names() const {
  if (options_.momentum == 0) return {};
  // The two buffers mean different things (one holds -lr * g sums), so a checkpoint of one
  // must not load silently into the other.
  return {options_.pytorch_style ? "momentum_buffer" : "velocity"};
}

void SGD::update(float* w, const float* g, float* const* slots, int64_t n, float lr, int64_t) {
  const float m = options_.momentum;
  if (m == 0) {
    plain_step(w, g, n, lr);
    return;
  }
  MomentumScales s = options_.pytorch_style ? MomentumScales{1.f, -lr, -lr} : MomentumScales{-lr, 1.f, -lr};
  if (options_.nesterov) {
    s.w_buf *= m;
    momentum_step<true>(w, g, slots[0], n, m, s);
  } else {
    momentum_step<false>(w, g, slots[0], n, m, s);
  }
}

}  // namespace kiln::optim
