#include "autograd/gradient_tape.h"

#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "tensor/ops/binary.h"
#include "tensor/ops/cast.h"

namespace kiln {

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

  // As in TensorFlow, only tensors this tape watches (explicitly, as accessed trainable
  // variables, or as outputs of recorded ops) can receive gradients.
  std::unordered_set<uint64_t> source_ids;
  for (const Tensor& s : sources) {
    if (!s.defined()) throw std::invalid_argument("GradientTape::gradient: undefined source");
    if (state_.tracked.count(s.id())) source_ids.insert(s.id());
  }
  // Only nodes downstream of a source can carry gradient to one.
  std::vector<bool> relevant(state_.nodes.size(), false);
  std::unordered_set<uint64_t> reaches = source_ids;
  for (size_t i = 0; i < state_.nodes.size(); ++i) {
    for (uint64_t id : state_.nodes[i].input_ids) {
      if (reaches.count(id)) {
        relevant[i] = true;
        break;
      }
    }
    if (relevant[i]) reaches.insert(state_.nodes[i].output_ids.begin(), state_.nodes[i].output_ids.end());
  }

  std::unordered_map<uint64_t, Tensor> grads;
  grads[target.id()] = output_gradient.defined() ? cast(output_gradient, target.dtype())
                                                 : Tensor::ones(target.shape(), target.dtype());
  // With a hook, each source's gradient is reported once final: after the earliest node
  // that reads the source has been visited, nothing more is added to it.
  GradientHook hook = std::move(hook_);
  hook_ = nullptr;
  std::vector<std::vector<size_t>> final_after(hook ? state_.nodes.size() : 0);
  std::vector<Tensor> result(sources.size());
  std::vector<bool> reported(sources.size(), false);
  auto final_gradient = [&](size_t j) {
    const Tensor& s = sources[j];
    auto it = grads.find(s.id());
    if (it != grads.end()) return it->second.dtype() == s.dtype() ? it->second : cast(it->second, s.dtype());
    return unconnected == UnconnectedGradients::zero ? Tensor::zeros(s.shape(), s.dtype()) : Tensor();
  };
  auto report = [&](size_t j) {
    if (reported[j]) return;
    reported[j] = true;
    result[j] = final_gradient(j);
    hook(j, result[j]);
  };
  if (hook) {
    std::unordered_map<uint64_t, size_t> first_reader;
    for (size_t i = 0; i < state_.nodes.size(); ++i) {
      if (!relevant[i]) continue;
      for (uint64_t id : state_.nodes[i].input_ids) first_reader.try_emplace(id, i);
    }
    for (size_t j = 0; j < sources.size(); ++j) {
      auto it = source_ids.count(sources[j].id()) ? first_reader.find(sources[j].id()) : first_reader.end();
      if (it != first_reader.end()) final_after[it->second].push_back(j);
    }
  }
  for (size_t i = state_.nodes.size(); i-- > 0;) {
    if (hook && i + 1 < state_.nodes.size()) {
      for (size_t j : final_after[i + 1]) report(j);
    }
    if (!relevant[i]) continue;
    const autograd::Node& node = state_.nodes[i];
    std::vector<Tensor> out_grads(node.output_ids.size());
    bool any = false;
    for (size_t k = 0; k < node.output_ids.size(); ++k) {
      auto it = grads.find(node.output_ids[k]);
      if (it != grads.end()) {
        out_grads[k] = it->second;
        any = true;
        if (!source_ids.count(node.output_ids[k])) grads.erase(it);
      }
    }
    if (!any) continue;
    for (size_t k = 0; k < out_grads.size(); ++k) {
      if (!out_grads[k].defined()) out_grads[k] = Tensor::zeros(node.output_shapes[k], node.output_dtypes[k]);
    }
    std::vector<bool> needs(node.input_ids.size());
    for (size_t k = 0; k < needs.size(); ++k) needs[k] = node.input_ids[k] != 0 && reaches.count(node.input_ids[k]) > 0;
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
      if (!in_grads[k].defined() || node.input_ids[k] == 0 || !reaches.count(node.input_ids[k])) continue;
      auto [it, inserted] = grads.try_emplace(node.input_ids[k], in_grads[k]);
      if (!inserted) {
        if (it->second.shape() != in_grads[k].shape()) {
          throw std::logic_error(std::string("backward of ") + node.op() + " produced gradient " +
                                 in_grads[k].describe() + " that does not match " + it->second.describe());
        }
        it->second = add(it->second, cast(in_grads[k], it->second.dtype()));
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
    state_.nodes.clear();
    state_.nodes.shrink_to_fit();
    state_.tracked.clear();
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
