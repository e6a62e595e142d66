#include "optim/optimizer.h"

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

Optimizer::Optimizer(std::string name, std::shared_ptr<LearningRateSchedule> schedule, ClipOptions clip)
    : name_(std::move(name)), schedule_(std::move(schedule)), clip_(clip) {
  if (!schedule_) throw std::invalid_argument(name_ + ": no learning rate given");
}

float Optimizer::learning_rate() const { return (*schedule_)(iterations_); }

void Optimizer::set_learning_rate(float lr) { schedule_ = std::make_shared<ConstantLR>(lr); }

void Optimizer::set_schedule(std::shared_ptr<LearningRateSchedule> schedule) {
  if (!schedule) throw std::invalid_argument(name_ + ": null schedule");
  schedule_ = std::move(schedule);
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
  if (clip_.global_clipnorm > 0) grads = clip_by_global_norm(grads, clip_.global_clipnorm).grads;
  float lr = learning_rate();
  int64_t step = iterations_ + 1;
  for (size_t i = 0; i < vars.size(); ++i) {
    if (!grads[i].defined()) continue;
    Tensor g = f32_dense(grads[i]);
    if (clip_.clipnorm > 0) {
      float norm = static_cast<float>(std::sqrt(sum_squares(g)));
      if (norm > clip_.clipnorm) g = scaled(g, clip_.clipnorm / norm);
    }
    if (clip_.clipvalue > 0) {
      g = g.clone_detached();
      float* p = g.data<float>();
      for (int64_t k = 0; k < g.numel(); ++k) p[k] = std::min(std::max(p[k], -clip_.clipvalue), clip_.clipvalue);
    }
    const Tensor& w = vars[i].value();
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
