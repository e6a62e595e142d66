#include "optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "tensor/ops/cast.h"
#include "tensor/ops/common.h"

namespace kiln::optim {
namespace {

Tensor f32_dense(const Tensor& g) { return detail::dense(cast(g, DType::f32)); }

double sum_squares(const Tensor& g) {
  Tensor d = f32_dense(g);
  const float* p = d.data<float>();
  double s = 0;
  int64_t n = d.numel();
#pragma omp parallel for reduction(+ : s) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(p[i]) * p[i];
  return s;
}

Tensor scaled(const Tensor& g, float factor) {
  Tensor d = f32_dense(g).clone_detached();
  float* p = d.data<float>();
  for (int64_t i = 0; i < d.numel(); ++i) p[i] *= factor;
  return d;
}

// Keras's _apply_weight_decay: w -= w * weight_decay * lr.
void decay_weights(const Tensor& w, float lr_times_decay) {
  float* p = w.data<float>();
  const int64_t n = w.numel();
#pragma omp parallel for simd if (n > (1 << 14))
  for (int64_t i = 0; i < n; ++i) p[i] -= p[i] * lr_times_decay;
}

// A new tensor g + weight_decay * w (g may be the caller's own gradient).
Tensor plus_l2_term(const Tensor& g, const Tensor& w, float weight_decay) {
  Tensor out = Tensor::empty(g.shape(), DType::f32);
  const float* gp = g.data<float>();
  const float* wp = w.data<float>();
  float* o = out.data<float>();
  const int64_t n = g.numel();
#pragma omp parallel for simd if (n > (1 << 14))
  for (int64_t i = 0; i < n; ++i) o[i] = gp[i] + weight_decay * wp[i];
  return out;
}

}  // namespace

float global_norm(const std::vector<Tensor>& grads) {
  double s = 0;
  for (const Tensor& g : grads) {
    if (g.defined()) s += sum_squares(g);
  }
  return static_cast<float>(std::sqrt(s));
}

ClippedGradients clip_by_global_norm(const std::vector<Tensor>& grads, float max_norm) {
  if (!(max_norm > 0)) throw std::invalid_argument("clip_by_global_norm: max_norm must be positive");
  float norm = global_norm(grads);
  ClippedGradients out{grads, norm};
  if (norm > max_norm && std::isfinite(norm)) {
    for (Tensor& g : out.grads) {
      if (g.defined()) g = scaled(g, max_norm / norm);
    }
  }
  return out;
}

std::shared_ptr<LearningRateSchedule> resolve_schedule(const std::string& optimizer, std::optional<float> learning_rate,
                                                       std::shared_ptr<LearningRateSchedule> schedule,
                                                       float default_learning_rate) {
  if (schedule) {
    if (learning_rate) {
      throw std::invalid_argument(optimizer + ": give learning_rate or schedule, not both (learning_rate " +
                                  std::to_string(*learning_rate) + " would be ignored)");
    }
    return schedule;
  }
  float lr = learning_rate.value_or(default_learning_rate);
  if (!(lr >= 0) || !std::isfinite(lr)) {
    throw std::invalid_argument(optimizer + ": learning rate must be finite and >= 0, got " + std::to_string(lr));
  }
  return std::make_shared<ConstantLR>(lr);
}

Optimizer::Optimizer(std::string name, BaseOptions options) : name_(std::move(name)), base_(std::move(options)) {
  if (!base_.schedule) throw std::invalid_argument(name_ + ": no learning rate given");
  if (!(base_.weight_decay >= 0) || !std::isfinite(base_.weight_decay)) {
    throw std::invalid_argument(name_ + ": weight_decay must be finite and >= 0, got " +
                                std::to_string(base_.weight_decay));
  }
  const ClipOptions& c = base_.clip;
  for (float v : {c.clipnorm, c.global_clipnorm, c.clipvalue}) {
    if (!(v >= 0)) throw std::invalid_argument(name_ + ": clip options must be >= 0 (0 turns them off)");
  }
  if ((c.clipnorm > 0) + (c.global_clipnorm > 0) + (c.clipvalue > 0) > 1) {
    throw std::invalid_argument(name_ + ": set only one of clipnorm, global_clipnorm and clipvalue (as in Keras)");
  }
}

float Optimizer::learning_rate() const { return (*base_.schedule)(iterations_); }

bool Optimizer::has_schedule() const { return !dynamic_cast<const ConstantLR*>(base_.schedule.get()); }

void Optimizer::set_learning_rate(float lr) {
  if (has_schedule()) {
    throw std::logic_error(name_ +
                           ": this optimizer's learning rate comes from a LearningRateSchedule, so it is not "
                           "settable (as in Keras); call set_schedule() to replace the schedule, or create the "
                           "optimizer with a float learning_rate");
  }
  if (!(lr >= 0) || !std::isfinite(lr)) {
    throw std::invalid_argument(name_ + ": learning rate must be finite and >= 0, got " + std::to_string(lr));
  }
  base_.schedule = std::make_shared<ConstantLR>(lr);
}

void Optimizer::set_schedule(std::shared_ptr<LearningRateSchedule> schedule) {
  if (!schedule) throw std::invalid_argument(name_ + ": null schedule");
  base_.schedule = std::move(schedule);
}

bool Optimizer::decays(const Variable& var) const {
  if (!(base_.weight_decay > 0)) return false;
  for (const std::string& s : base_.exclude_from_weight_decay) {
    if (var.name().find(s) != std::string::npos) return false;
  }
  return true;
}

std::vector<Tensor>& Optimizer::slots_for(const Variable& var) {
  auto& slots = slots_[var.value().id()];
  if (slots.empty()) {
    for (size_t i = 0; i < slot_names().size(); ++i) slots.push_back(Tensor::zeros(var.shape(), DType::f32));
  }
  return slots;
}

void Optimizer::apply_gradients(const std::vector<Tensor>& grads_in, const std::vector<Variable>& vars) {
  if (grads_in.size() != vars.size()) {
    throw std::invalid_argument(name_ + ".apply_gradients: " + std::to_string(grads_in.size()) + " gradients for " +
                                std::to_string(vars.size()) + " variables");
  }
  for (size_t i = 0; i < vars.size(); ++i) {
    if (!grads_in[i].defined()) continue;
    if (grads_in[i].shape() != vars[i].shape()) {
      throw std::invalid_argument(name_ + ".apply_gradients: gradient " + grads_in[i].describe() + " for variable '" +
                                  vars[i].name() + "' of shape " + shape_str(vars[i].shape()));
    }
    if (vars[i].dtype() != DType::f32) {
      throw std::invalid_argument(name_ + ".apply_gradients: variable '" + vars[i].name() + "' is " +
                                  dtype_name(vars[i].dtype()) + "; optimizers update f32 master weights");
    }
  }
  std::vector<Tensor> grads = grads_in;
  const ClipOptions& clip = base_.clip;
  if (clip.global_clipnorm > 0) grads = clip_by_global_norm(grads, clip.global_clipnorm).grads;
  float lr = learning_rate();
  int64_t step = iterations_ + 1;
  for (size_t i = 0; i < vars.size(); ++i) {
    if (!grads[i].defined()) continue;
    Tensor g = f32_dense(grads[i]);
    if (clip.clipnorm > 0) {
      float norm = static_cast<float>(std::sqrt(sum_squares(g)));
      if (norm > clip.clipnorm) g = scaled(g, clip.clipnorm / norm);
    }
    if (clip.clipvalue > 0) {
      g = g.clone_detached();
      float* p = g.data<float>();
      for (int64_t k = 0; k < g.numel(); ++k) p[k] = std::min(std::max(p[k], -clip.clipvalue), clip.clipvalue);
    }
    const Tensor& w = vars[i].value();
    if (decays(vars[i])) {
      if (base_.weight_decay_style == WeightDecayStyle::decoupled) {
        decay_weights(w, lr * base_.weight_decay);
      } else {
        g = plus_l2_term(g, w, base_.weight_decay);
      }
    }
    std::vector<float*> slot_ptrs;
    for (Tensor& s : slots_for(vars[i])) slot_ptrs.push_back(s.data<float>());
    update(w.data<float>(), g.data<float>(), slot_ptrs, w.numel(), lr, step);
    w.bump_version();
  }
  iterations_ = step;
}

std::vector<std::pair<std::string, Tensor>> Optimizer::slot_state(const std::vector<Variable>& vars) {
  std::vector<std::pair<std::string, Tensor>> out;
  std::vector<std::string> names = slot_names();
  for (const Variable& v : vars) {
    auto it = slots_.find(v.value().id());
    if (it == slots_.end()) continue;
    for (size_t k = 0; k < names.size(); ++k) out.emplace_back(v.name() + "/" + names[k], it->second[k]);
  }
  return out;
}

void Optimizer::check_slot_state(const std::vector<Variable>& vars,
                                 const std::vector<std::pair<std::string, Tensor>>& state) const {
  std::unordered_map<std::string, const Variable*> expected;
  std::vector<std::string> names = slot_names();
  for (const Variable& v : vars) {
    for (const std::string& k : names) expected[v.name() + "/" + k] = &v;
  }
  for (const auto& [n, t] : state) {
    auto it = expected.find(n);
    if (it == expected.end()) {
      throw std::invalid_argument(name_ + ": saved optimizer slot '" + n +
                                  "' belongs to no slot of this optimizer (was it saved by another optimizer?)");
    }
    const Variable& v = *it->second;
    if (t.shape() != v.shape() || t.dtype() != DType::f32) {
      throw std::invalid_argument(name_ + ": saved slot '" + n + "' is " + t.describe() + " but variable '" +
                                  v.name() + "' needs f32" + shape_str(v.shape()));
    }
  }
}

void Optimizer::load_slot_state(const std::vector<Variable>& vars,
                                const std::vector<std::pair<std::string, Tensor>>& state) {
  check_slot_state(vars, state);
  std::unordered_map<std::string, const Tensor*> by_name;
  for (auto& [n, t] : state) by_name[n] = &t;
  std::vector<std::string> names = slot_names();
  for (const Variable& v : vars) {
    slots_.erase(v.value().id());  // the loaded state replaces the old one whole
    for (size_t k = 0; k < names.size(); ++k) {
      auto it = by_name.find(v.name() + "/" + names[k]);
      if (it != by_name.end()) slots_for(v)[k].copy_from(*it->second);
    }
  }
}

}  // namespace kiln::optim
