#include "optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <omp.h>

#include "tensor/ops/cast.h"
#include "tensor/ops/common.h"
#include "tensor/isa_clones.h"
#include "tensor/row_sparse.h"

namespace kiln::optim {
namespace {

Tensor f32_dense(const Tensor& g) { return detail::dense(cast(g, DType::f32)); }

// g as f32 in its own layout: a packed (blocked or row-sparse) f32 tensor as it is, a
// row-sparse one of another dtype as f32 rows, anything else row-major.
Tensor f32_in_layout(const Tensor& g) {
  if (g.is_packed() && g.dtype() == DType::f32) return g;
  if (is_row_sparse(g)) return cast(g, DType::f32);
  return f32_dense(g);
}

// Optimizer state is updated as flat f32 arrays; a packed variable's array includes its block
// padding, which stays zero (zero gradient, zero slots) through every update rule.
struct Flat {
  float* p;
  int64_t n;
};
Flat flat(const Tensor& t) {
  if (t.is_packed()) return {static_cast<float*>(t.packed_data()), static_cast<int64_t>(t.packed_layout()->bytes() / sizeof(float))};
  return {t.data<float>(), t.numel()};
}

bool same_layout(const Tensor& a, const Tensor& b) {
  if (a.is_packed() != b.is_packed()) return false;
  return !a.is_packed() || a.packed_layout() == b.packed_layout() || a.packed_layout()->same_as(*b.packed_layout());
}

// `t` as f32 in the layout of `like` (row-major, or like's packed layout); no copy when it
// already is.
Tensor conform(const Tensor& t, const Tensor& like) {
  if (!like.is_packed()) return f32_dense(t);
  if (t.dtype() == DType::f32 && same_layout(t, like)) return t;
  Tensor out = Tensor::empty_packed(like.shape(), DType::f32, like.packed_layout());
  out.copy_from(t);
  return out;
}

KILN_ISA_CLONES double sum_squares_flat(const float* p, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(p[i]) * p[i];
  return s;
}

double sum_squares(const Tensor& g) {
  Tensor d = f32_in_layout(g);
  Flat f = flat(d);
  constexpr int64_t kChunk = 1 << 15;
  if (f.n <= kChunk) return sum_squares_flat(f.p, f.n);
  double s = 0;
#pragma omp parallel for reduction(+ : s)
  for (int64_t c = 0; c < f.n; c += kChunk) s += sum_squares_flat(f.p + c, std::min(kChunk, f.n - c));
  return s;
}

// A copy of g (f32, g's layout) times factor.
Tensor scaled(const Tensor& g, float factor) {
  Tensor d = f32_in_layout(g);
  Tensor out = d.is_packed() ? Tensor::empty_packed(d.shape(), DType::f32, d.packed_layout()) : Tensor::empty(d.shape(), DType::f32);
  Flat src = flat(d), dst = flat(out);
  for (int64_t i = 0; i < src.n; ++i) dst.p[i] = src.p[i] * factor;
  return out;
}

// A new tensor g + weight_decay * w, in their shared layout.
Tensor plus_l2_term(const Tensor& g, const Tensor& w, float weight_decay) {
  Tensor out = w.is_packed() ? Tensor::empty_packed(w.shape(), DType::f32, w.packed_layout()) : Tensor::empty(g.shape(), DType::f32);
  Flat gf = flat(g), wf = flat(w), of = flat(out);
  for (int64_t i = 0; i < of.n; ++i) of.p[i] = gf.p[i] + weight_decay * wf.p[i];
  return out;
}

// Keras's _apply_weight_decay: w -= w * weight_decay * lr.
KILN_ISA_CLONES void decay_weights(float* w, int64_t n, float lr_times_decay) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) w[i] -= w[i] * lr_times_decay;
}

// Below this many elements in a whole step the update runs on the calling thread: a fork and
// join would cost more than the loop.
constexpr int64_t kParallelUpdateThreshold = 1 << 15;
// Thread slices start on 64-byte boundaries so no two threads write one cache line.
constexpr int64_t kSliceAlign = 16;

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

void Optimizer::set_iterations(int64_t it) {
  if (it < 0 || it > kMaxIterations) {
    throw std::invalid_argument(name_ + ": iterations " + std::to_string(it) + " is outside [0, " +
                                std::to_string(kMaxIterations) + "]");
  }
  iterations_ = it;
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
  const Tensor& w = var.value();
  auto& slots = slots_[w.id()];
  if (slots.empty()) {
    for (size_t i = 0; i < slot_names().size(); ++i) {
      slots.push_back(w.is_packed() ? Tensor::empty_packed(w.shape(), DType::f32, w.packed_layout())
                                    : Tensor::zeros(w.shape(), DType::f32));
    }
  }
  // kiln::optimize may pack (or a checkpoint load unpack) a variable after its slots exist:
  // the slots follow it into the new layout once.
  for (Tensor& slot : slots) {
    if (!same_layout(slot, w)) slot = conform(slot, w);
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
  if (iterations_ >= kMaxIterations) {
    throw std::overflow_error(name_ + ": the step count " + std::to_string(iterations_) + " is at its limit of " +
                              std::to_string(kMaxIterations));
  }
  int64_t step = iterations_ + 1;
  work_.clear();
  work_slots_.clear();
  work_grads_.clear();
  for (size_t i = 0; i < vars.size(); ++i) {
    if (!grads[i].defined()) continue;
    const Tensor& w = vars[i].value();
    // A row-sparse gradient (an embedding's) stays sparse through clipping and the update,
    // which then reads no dense gradient. Two cases fall back to a dense one: packed weights,
    // and pytorch_style weight decay, whose L2 term w * weight_decay is dense.
    const bool l2_term = decays(vars[i]) && base_.weight_decay_style == WeightDecayStyle::l2_in_gradient;
    const bool sparse = is_row_sparse(grads[i]) && !w.is_packed() && !l2_term;
    Tensor g = sparse ? cast(grads[i], DType::f32) : conform(grads[i], w);  // conform densifies
    if (clip.clipnorm > 0) {
      float norm = static_cast<float>(std::sqrt(sum_squares(g)));
      if (norm > clip.clipnorm) g = scaled(g, clip.clipnorm / norm);
    }
    if (clip.clipvalue > 0) {
      g = scaled(g, 1.f);
      Flat f = flat(g);
      for (int64_t k = 0; k < f.n; ++k) f.p[k] = std::min(std::max(f.p[k], -clip.clipvalue), clip.clipvalue);
    }
    float decay = 0.f;
    if (decays(vars[i])) {
      if (base_.weight_decay_style == WeightDecayStyle::decoupled) {
        decay = lr * base_.weight_decay;
      } else {
        g = plus_l2_term(g, w, base_.weight_decay);
      }
    }
    std::vector<Tensor>& slots = slots_for(vars[i]);
    if (sparse) {
      add_row_sparse_slices(w, g, slots, decay);
    } else {
      Slice slice{flat(w).p, flat(g).p, work_slots_.size(), slots.size(), flat(w).n, decay};
      for (const Tensor& slot : slots) work_slots_.push_back(flat(slot).p);
      work_.push_back(slice);
    }
    work_grads_.push_back(std::move(g));
  }
  run_fused_update(lr, step);
  for (size_t i = 0; i < vars.size(); ++i) {
    if (grads[i].defined()) vars[i].value().bump_version();
  }
  work_grads_.clear();
  iterations_ = step;
}

// A row-sparse gradient's update, as slices: each run of consecutive stored rows reads its
// rows; the rows between (zero gradient) read a shared zero buffer of at most kZeroChunk
// elements per slice, so every row gets the dense rule's numbers (Keras applies Adam's and
// momentum's dense formula to sparse gradients: untouched rows' moments decay) without a dense
// gradient. An optimizer for which a zero gradient changes nothing (plain SGD) skips them, as
// TensorFlow's sparse SGD update does, unless weight decay must reach every row.
void Optimizer::add_row_sparse_slices(const Tensor& w, const Tensor& g, const std::vector<Tensor>& slots,
                                      float decay) {
  constexpr int64_t kZeroChunk = 1 << 14;
  const RowSparseLayout& layout = *row_sparse_layout(g);
  const std::vector<int32_t>& rows = layout.rows();
  const int64_t width = layout.row_elements();
  float* weights = w.data<float>();
  const float* values = static_cast<const float*>(g.packed_data());
  auto add = [&](int64_t first_element, int64_t n, const float* grad) {
    work_.push_back(Slice{weights + first_element, grad, work_slots_.size(), slots.size(), n, decay});
    for (const Tensor& slot : slots) work_slots_.push_back(slot.data<float>() + first_element);
  };
  const bool skip_untouched = decay == 0.f && zero_gradient_changes_nothing();
  auto add_untouched = [&](int64_t first_row, int64_t end_row) {
    if (skip_untouched) return;
    if (zero_gradient_.empty()) zero_gradient_.assign(kZeroChunk, 0.f);
    for (int64_t e = first_row * width, end = end_row * width; e < end; e += kZeroChunk) {
      add(e, std::min(kZeroChunk, end - e), zero_gradient_.data());
    }
  };
  int64_t next_row = 0;
  for (size_t k = 0; k < rows.size();) {
    size_t run_end = k + 1;
    while (run_end < rows.size() && rows[run_end] == rows[run_end - 1] + 1) ++run_end;
    add_untouched(next_row, rows[k]);
    add(rows[k] * width, static_cast<int64_t>(run_end - k) * width, values + static_cast<int64_t>(k) * width);
    next_row = rows[run_end - 1] + 1;
    k = run_end;
  }
  add_untouched(next_row, layout.dense_rows());
}

// One parallel region for every variable of the step (a multi-tensor update): the elements of
// all slices are split evenly across the threads, so small layers cost no fork/join of their own
// and large ones still use every core.
void Optimizer::run_fused_update(float lr, int64_t step) {
  int64_t total = 0;
  for (const Slice& s : work_) total += s.n;
  auto run_range = [&](int64_t begin, int64_t end) {
    // Each slice's slot pointers moved to this range; any number of slots (a user's optimizer
    // may keep more than Keras's at most three), on the stack for the usual few.
    constexpr size_t kStackSlots = 8;
    float* stack_slots[kStackSlots];
    std::vector<float*> heap_slots;
    int64_t base = 0;
    for (const Slice& s : work_) {
      int64_t lo = std::max(begin, base), hi = std::min(end, base + s.n);
      if (lo < hi) {
        int64_t off = lo - base, n = hi - lo;
        float** slots = stack_slots;
        if (s.num_slots > kStackSlots) {
          heap_slots.resize(s.num_slots);
          slots = heap_slots.data();
        }
        for (size_t k = 0; k < s.num_slots; ++k) slots[k] = work_slots_[s.first_slot + k] + off;
        if (s.decay != 0.f) decay_weights(s.w + off, n, s.decay);
        update(s.w + off, s.g + off, slots, n, lr, step);
      }
      base += s.n;
      if (base >= end) break;
    }
  };
  if (total < kParallelUpdateThreshold) {
    run_range(0, total);
    return;
  }
#pragma omp parallel
  {
    int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    auto bound = [&](int64_t k) { return k == threads ? total : (total * k / threads) / kSliceAlign * kSliceAlign; };
    run_range(bound(t), bound(t + 1));
  }
}

void Optimizer::follow_variable_layouts(const std::vector<Variable>& vars) {
  for (const Variable& v : vars) {
    if (slots_.count(v.value().id())) slots_for(v);
  }
}

std::vector<std::pair<std::string, Tensor>> Optimizer::slot_state(const std::vector<Variable>& vars) {
  std::vector<std::pair<std::string, Tensor>> out;
  std::vector<std::string> names = slot_names();
  for (const Variable& v : vars) {
    auto it = slots_.find(v.value().id());
    if (it == slots_.end()) continue;
    // Checkpoints hold the Keras layout, whatever layout kiln::optimize keeps the slots in.
    for (size_t k = 0; k < names.size(); ++k) out.emplace_back(v.name() + "/" + names[k], it->second[k].plain());
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
