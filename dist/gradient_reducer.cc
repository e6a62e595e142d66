#include "dist/gradient_reducer.h"

#include <chrono>
#include <cstring>
#include <stdexcept>

#include "dist/world.h"
#include "tensor/bf16.h"
#include "tensor/ops/ops.h"

namespace kiln::dist {

GradientReducer::GradientReducer(ReducerOptions options) : options_(options) {
  if (options_.bucket_bytes <= 0) {
    throw std::invalid_argument("GradientReducer: bucket_bytes must be positive, got " +
                                std::to_string(options_.bucket_bytes));
  }
}

// Requests still in flight (a step abandoned by an exception) must complete before their
// buffers go away.
GradientReducer::~GradientReducer() {
  try {
    for (Bucket& b : buckets_) wait(b.request);
    wait(weight_request_);
  } catch (...) {
  }
}

void GradientReducer::layout(const std::vector<Variable>& vars) {
  std::vector<uint64_t> ids;
  for (const Variable& v : vars) ids.push_back(v.value().id());
  if (ids == var_ids_) return;
  vars_ = vars;
  var_ids_ = ids;
  buckets_.clear();
  where_.assign(vars.size(), {0, 0});
  const int64_t elem_bytes = options_.bf16_communication ? 2 : 4;
  Bucket current;
  for (size_t k = vars.size(); k-- > 0;) {
    where_[k] = {buckets_.size(), current.vars.size()};
    current.vars.push_back(k);
    current.offset.push_back(current.elements);
    current.elements += vars[k].value().numel();
    if (current.elements * elem_bytes >= options_.bucket_bytes) {
      buckets_.push_back(std::move(current));
      current = Bucket();
    }
  }
  if (!current.vars.empty()) buckets_.push_back(std::move(current));
  for (Bucket& b : buckets_) {
    if (options_.bf16_communication) {
      b.bf16.resize(b.elements);
    } else {
      b.f32.resize(b.elements);
    }
  }
}

void GradientReducer::abandon() {
  for (Bucket& b : buckets_) wait(b.request);
  wait(weight_request_);
  in_step_ = in_backward_ = false;
}

void GradientReducer::begin(const std::vector<Variable>& vars, double weight, GradientTape* tape) {
  if (in_step_) abandon();  // the previous step threw before finish()
  if (!(weight >= 0)) throw std::invalid_argument("GradientReducer::begin: weight must be >= 0");
  if (!initialized() && under_launcher()) init();
  pass_through_ = options_.pass_through_alone && !(initialized() && world_size() > 1);
  wait_seconds_ = 0;
  started_in_backward_ = 0;
  if (pass_through_) {
    vars_ = vars;
    in_step_ = true;
    return;
  }
  layout(vars);
  for (Bucket& b : buckets_) {
    b.pending = b.vars.size();
    b.started = false;
  }
  packed_.assign(vars.size(), false);
  defined_.assign(vars.size(), false);
  start_order_.clear();
  started_in_backward_ = 0;
  wait_seconds_ = 0;
  local_weight_ = static_cast<float>(weight);
  weight_buffer_ = local_weight_;
  weight_request_ = iallreduce_sum(&weight_buffer_, 1, false);
  in_step_ = true;
  if (tape) {
    in_backward_ = true;
    tape->set_gradient_hook([this](size_t i, const Tensor& g) { on_gradient(i, g); });
  }
}

void GradientReducer::pack(size_t index, const Tensor& gradient) {
  if (packed_[index]) return;
  packed_[index] = true;
  auto [bi, slot] = where_[index];
  Bucket& b = buckets_[bi];
  const int64_t n = vars_[index].value().numel();
  const int64_t off = b.offset[slot];
  const float weight = local_weight_;
  if (gradient.defined()) {
    if (gradient.numel() != n) {
      throw std::invalid_argument("GradientReducer: gradient " + gradient.describe() + " for variable '" +
                                  vars_[index].name() + "' of shape " + vars_[index].value().describe());
    }
    defined_[index] = true;
    // The allreduce sums whole buckets, so a row-sparse gradient (an embedding's) is made
    // dense here: data-parallel training's one dense fallback for it.
    Tensor g = gradient.is_packed() ? cast(gradient, DType::f32).plain() : gradient;
    if (g.dtype() != DType::f32 || !g.is_contiguous()) g = cast(g, DType::f32);
    if (!g.is_contiguous()) g = g.clone_detached();
    const float* src = g.data<float>();
    if (options_.bf16_communication) {
      uint16_t* dst = b.bf16.data() + off;
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16::round_from_float(src[i] * weight);
    } else {
      float* dst = b.f32.data() + off;
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i] * weight;
    }
  } else if (options_.bf16_communication) {
    std::memset(b.bf16.data() + off, 0, n * sizeof(uint16_t));
  } else {
    std::memset(b.f32.data() + off, 0, n * sizeof(float));
  }
  if (--b.pending == 0) start(b);
}

void GradientReducer::start(Bucket& b) {
  b.started = true;
  start_order_.push_back(&b - buckets_.data());
  if (in_backward_) ++started_in_backward_;
  b.request = options_.bf16_communication ? iallreduce_sum(b.bf16.data(), b.elements, true)
                                          : iallreduce_sum(b.f32.data(), b.elements, false);
}

// Open MPI moves a non-blocking collective forward only inside MPI calls.
void GradientReducer::progress() {
  for (size_t bi : start_order_) test(buckets_[bi].request);
}

void GradientReducer::on_gradient(size_t index, const Tensor& gradient) {
  if (!in_step_ || pass_through_ || index >= vars_.size()) return;
  pack(index, gradient);
  progress();
}

std::vector<Tensor> GradientReducer::finish(const std::vector<Tensor>& local) {
  if (!in_step_) throw std::logic_error("GradientReducer::finish without begin");
  in_backward_ = false;
  in_step_ = false;
  if (local.size() != vars_.size()) {
    throw std::invalid_argument("GradientReducer::finish: " + std::to_string(local.size()) + " gradients for " +
                                std::to_string(vars_.size()) + " variables");
  }
  if (pass_through_) return local;
  // Gradients the hook did not see (no tape hooked, or computed another way), bucket order.
  for (Bucket& b : buckets_) {
    for (size_t k : b.vars) {
      if (!packed_[k]) pack(k, local[k]);
    }
  }
  auto t0 = std::chrono::steady_clock::now();
  wait(weight_request_);
  for (size_t bi : start_order_) wait(buckets_[bi].request);
  wait_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!(weight_buffer_ > 0)) throw std::invalid_argument("GradientReducer::finish: the ranks' weights sum to zero");
  const float total = weight_buffer_;
  std::vector<Tensor> out(vars_.size());
  for (size_t k = 0; k < vars_.size(); ++k) {
    if (!defined_[k]) continue;
    auto [bi, slot] = where_[k];
    const Bucket& b = buckets_[bi];
    const int64_t off = b.offset[slot];
    Tensor g = Tensor::empty(vars_[k].shape(), DType::f32);
    float* dst = g.data<float>();
    const int64_t n = g.numel();
    if (options_.bf16_communication) {
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16::to_float(b.bf16[off + i]) / total;
    } else {
      for (int64_t i = 0; i < n; ++i) dst[i] = b.f32[off + i] / total;
    }
    out[k] = local[k].dtype() == DType::f32 ? g : cast(g, local[k].dtype());
  }
  return out;
}

}  // namespace kiln::dist
