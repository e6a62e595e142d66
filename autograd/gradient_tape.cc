#include "autograd/gradient_tape.h"

#include <memory>
#include <stdexcept>

#include "tensor/ops/binary.h"
#include "tensor/ops/cast.h"
#include "tensor/row_sparse.h"

namespace kiln {
namespace {

// gradient()'s working tables. A training loop differentiates the same step again and again,
// so they are kept per thread with their capacity; a gradient() inside a backward function
// (nested) leases another set.
struct Scratch {
  autograd::IdSet source_ids, reaches;
  autograd::IdMap<Tensor> grads;
};
class ScratchLease {
 public:
  ScratchLease() {
    if (pool().empty()) {
      s_ = std::make_unique<Scratch>();
    } else {
      s_ = std::move(pool().back());
      pool().pop_back();
    }
  }
  ~ScratchLease() {
    s_->source_ids.clear();
    s_->reaches.clear();
    s_->grads.clear();  // releases the gradients it still holds
    pool().push_back(std::move(s_));
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  Scratch& operator*() { return *s_; }

 private:
  static std::vector<std::unique_ptr<Scratch>>& pool() {
    thread_local std::vector<std::unique_ptr<Scratch>> p;
    return p;
  }
  std::unique_ptr<Scratch> s_;
};

}  // namespace

GradientTape::GradientTape(bool persistent, bool watch_accessed_variables) {
  state_.persistent = persistent;
  state_.watch_accessed_variables = watch_accessed_variables;
  autograd::push_tape(&state_);
}

GradientTape::~GradientTape() { autograd::pop_tape(&state_); }

void GradientTape::watch(const Tensor& t) {
  if (!t.defined()) throw std::invalid_argument("GradientTape::watch: undefined tensor");
  if (!is_floating(t.dtype())) {
    throw std::invalid_argument("GradientTape::watch: only floating tensors can be watched, got " + t.describe());
  }
  state_.tracked.insert(t.id());
}

void GradientTape::reset() {
  state_.nodes.clear();
  state_.tracked.clear();
  state_.consumed = false;
}

std::vector<Tensor> GradientTape::gradient(const Tensor& target, const std::vector<Tensor>& sources,
                                           const Tensor& output_gradient, UnconnectedGradients unconnected) {
  if (state_.consumed) {
    throw std::runtime_error(
        "GradientTape::gradient can only be called once on a non-persistent tape; construct it with "
        "persistent=true to compute several gradients");
  }
  if (!target.defined()) throw std::invalid_argument("GradientTape::gradient: undefined target");
  if (!is_floating(target.dtype())) {
    throw std::invalid_argument("GradientTape::gradient: target must be floating, got " + target.describe());
  }
  if (output_gradient.defined() && output_gradient.shape() != target.shape()) {
    throw std::invalid_argument("GradientTape::gradient: output_gradient " + output_gradient.describe() +
                                " does not match target " + target.describe());
  }
  Pause pause(&state_);
  const std::vector<autograd::Node>& nodes = state_.nodes;

  // As in TensorFlow, only tensors this tape watches (explicitly, as accessed trainable
  // variables, or as outputs of recorded ops) can receive gradients.
  ScratchLease lease;
  autograd::IdSet& source_ids = (*lease).source_ids;
  autograd::IdSet& reaches = (*lease).reaches;
  autograd::IdMap<Tensor>& grads = (*lease).grads;
  source_ids.reserve(sources.size());
  for (const Tensor& s : sources) {
    if (!s.defined()) throw std::invalid_argument("GradientTape::gradient: undefined source");
    if (state_.tracked.count(s.id())) source_ids.insert(s.id());
  }
  // Only nodes downstream of a source can carry gradient to one.
  std::vector<bool> relevant(nodes.size(), false);
  reaches.reserve(sources.size() + 2 * nodes.size());
  for (const Tensor& s : sources) {
    if (source_ids.count(s.id())) reaches.insert(s.id());
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (uint64_t id : nodes[i].input_ids) {
      if (reaches.count(id)) {
        relevant[i] = true;
        break;
      }
    }
    if (relevant[i]) {
      for (uint64_t id : nodes[i].output_ids) reaches.insert(id);
    }
  }

  grads.reserve(nodes.size());
  *grads.try_emplace(target.id()).first = output_gradient.defined() ? cast(output_gradient, target.dtype())
                                                                    : Tensor::ones(target.shape(), target.dtype());
  // With a hook, each source's gradient is reported once final: after the earliest node
  // that reads the source has been visited, nothing more is added to it.
  GradientHook hook = std::move(hook_);
  hook_ = nullptr;
  std::vector<std::vector<size_t>> final_after(hook ? nodes.size() : 0);
  std::vector<Tensor> result(sources.size());
  std::vector<bool> reported(sources.size(), false);
  auto final_gradient = [&](size_t j) {
    const Tensor& s = sources[j];
    if (const Tensor* g = grads.find(s.id())) return g->dtype() == s.dtype() ? *g : cast(*g, s.dtype());
    return unconnected == UnconnectedGradients::zero ? Tensor::zeros(s.shape(), s.dtype()) : Tensor();
  };
  auto report = [&](size_t j) {
    if (reported[j]) return;
    reported[j] = true;
    result[j] = final_gradient(j);
    hook(j, result[j]);
  };
  if (hook) {
    autograd::IdMap<size_t> first_reader(nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (!relevant[i]) continue;
      for (uint64_t id : nodes[i].input_ids) {
        if (id != 0) first_reader.try_emplace(id, i);
      }
    }
    for (size_t j = 0; j < sources.size(); ++j) {
      const size_t* first = source_ids.count(sources[j].id()) ? first_reader.find(sources[j].id()) : nullptr;
      if (first) final_after[*first].push_back(j);
    }
  }
  // Reused for every node: one allocation each for the whole walk.
  std::vector<Tensor> out_grads;
  std::vector<bool> needs;
  for (size_t i = nodes.size(); i-- > 0;) {
    if (hook && i + 1 < nodes.size()) {
      for (size_t j : final_after[i + 1]) report(j);
    }
    if (!relevant[i]) continue;
    const autograd::Node& node = nodes[i];
    out_grads.assign(node.output_ids.size(), Tensor());
    bool any = false;
    for (size_t k = 0; k < node.output_ids.size(); ++k) {
      uint64_t id = node.output_ids[k];
      if (Tensor* g = grads.find(id)) {
        out_grads[k] = *g;
        any = true;
        if (!source_ids.count(id)) grads.erase(id);
      }
    }
    if (!any) continue;
    for (size_t k = 0; k < out_grads.size(); ++k) {
      if (!out_grads[k].defined()) out_grads[k] = Tensor::zeros(node.outputs[k].first, node.outputs[k].second);
    }
    needs.assign(node.input_ids.size(), false);
    for (size_t k = 0; k < needs.size(); ++k) needs[k] = node.input_ids[k] != 0 && reaches.count(node.input_ids[k]);
    std::vector<Tensor> in_grads;
    {
      autograd::NeedsGradScope scope(&needs);
      in_grads = (*node.backward)(out_grads);
    }
    if (in_grads.size() != node.input_ids.size()) {
      throw std::logic_error(std::string("backward of ") + node.op() + " returned " + std::to_string(in_grads.size()) +
                             " gradients for " + std::to_string(node.input_ids.size()) + " inputs");
    }
    for (size_t k = 0; k < in_grads.size(); ++k) {
      const uint64_t id = node.input_ids[k];
      if (!in_grads[k].defined() || id == 0 || !reaches.count(id)) continue;
      auto [g, inserted] = grads.try_emplace(id, in_grads[k]);
      if (!inserted) {
        if (g->shape() != in_grads[k].shape()) {
          throw std::logic_error(std::string("backward of ") + node.op() + " produced gradient " +
                                 in_grads[k].describe() + " that does not match " + g->describe());
        }
        // Two row-sparse gradients (a table gathered twice) add up sparsely; add() would
        // densify them.
        Tensor sum = is_row_sparse(*g) && is_row_sparse(in_grads[k])
                         ? row_sparse_add(*g, cast(in_grads[k], g->dtype()))
                         : add(*g, cast(in_grads[k], g->dtype()));  // add() leaves grads alone: g stays valid
        *g = std::move(sum);
      }
    }
  }

  for (size_t j = 0; j < sources.size(); ++j) {
    if (hook) {
      report(j);  // the earliest reader's sources, and sources no recorded op reads
    } else {
      result[j] = final_gradient(j);
    }
  }
  if (!state_.persistent) {
    autograd::release_tape(&state_);
    state_.consumed = true;
  }
  return result;
}

std::vector<Tensor> GradientTape::gradient(const Tensor& target, const std::vector<Variable>& sources,
                                           const Tensor& output_gradient, UnconnectedGradients unconnected) {
  std::vector<Tensor> values;
  values.reserve(sources.size());
  for (const Variable& v : sources) values.push_back(v.value());
  return gradient(target, values, output_gradient, unconnected);
}

Tensor GradientTape::gradient(const Tensor& target, const Tensor& source) {
  return gradient(target, std::vector<Tensor>{source})[0];
}

}  // namespace kiln
