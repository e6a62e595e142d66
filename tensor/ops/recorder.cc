#include "tensor/ops/recorder.h"

#include <algorithm>
#include <stdexcept>

namespace kiln::autograd {
namespace {
thread_local std::vector<TapeState*> active_tapes;
thread_local const std::vector<bool>* current_needs = nullptr;
thread_local OpObserver* current_observer = nullptr;

bool tape_wants(const TapeState* tape, const Tensor& t) {
  if (!t.defined() || !is_floating(t.dtype())) return false;
  if (tape->tracked.count(t.id())) return true;
  return tape->watch_accessed_variables && t.is_trainable_variable();
}
}  // namespace

bool needs_input_grad(size_t index) {
  return current_needs == nullptr || index >= current_needs->size() || (*current_needs)[index];
}

NeedsGradScope::NeedsGradScope(const std::vector<bool>* needs) : override_(current_needs, needs) {}

// A released tape's containers, emptied but with their capacity, for the next tape on this
// thread: a training loop records the same step again, so after the first step a tape's
// nodes and tracked ids cost no allocation.
struct SpareTape {
  std::vector<Node> nodes;
  IdSet tracked;
};
thread_local SpareTape spare;

void push_tape(TapeState* tape) {
  if (tape->nodes.empty() && tape->nodes.capacity() < spare.nodes.capacity()) tape->nodes.swap(spare.nodes);
  if (tape->tracked.size() == 0 && tape->tracked.capacity() < spare.tracked.capacity()) tape->tracked.swap(spare.tracked);
  active_tapes.push_back(tape);
}

void release_tape(TapeState* tape) {
  tape->nodes.clear();
  tape->tracked.clear();
  if (tape->nodes.capacity() > spare.nodes.capacity()) tape->nodes.swap(spare.nodes);
  if (tape->tracked.capacity() > spare.tracked.capacity()) tape->tracked.swap(spare.tracked);
}

void pop_tape(TapeState* tape) {
  auto it = std::find(active_tapes.begin(), active_tapes.end(), tape);
  if (it != active_tapes.end()) active_tapes.erase(it);
  release_tape(tape);
}

bool any_tape_active() { return !active_tapes.empty(); }

ObserverScope::ObserverScope(OpObserver* observer) : override_(current_observer, observer) {}
bool observing() { return current_observer != nullptr; }

QuietScope::QuietScope() : observer_(current_observer) {
  tapes_.swap(active_tapes);
  current_observer = nullptr;
}
QuietScope::~QuietScope() {
  active_tapes.swap(tapes_);
  current_observer = observer_;
}

bool should_record(std::initializer_list<const Tensor*> inputs) {
  if (current_observer) return true;
  for (TapeState* tape : active_tapes) {
    if (!tape->recording()) continue;
    for (const Tensor* t : inputs) {
      if (tape_wants(tape, *t)) return true;
    }
  }
  return false;
}

bool should_record(const std::vector<Tensor>& inputs) {
  if (current_observer) return true;
  for (TapeState* tape : active_tapes) {
    if (!tape->recording()) continue;
    for (const Tensor& t : inputs) {
      if (tape_wants(tape, t)) return true;
    }
  }
  return false;
}

void observe(const ops::Attrs& call, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
  if (current_observer) current_observer->on_op(call, inputs, outputs);
}

void record(const char* op, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn backward) {
  if (current_observer) observe(ops::Attrs(op), inputs, outputs);
  record_on_tapes(op, inputs, outputs, std::move(backward));
}

void record(const ops::Attrs& call, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn backward) {
  observe(call, inputs, outputs);
  record_on_tapes(call.op().c_str(), inputs, outputs, std::move(backward));
}

void record_on_tapes(const char* op, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
                     BackwardFn backward) {
  std::shared_ptr<const BackwardFn> shared;
  for (TapeState* tape : active_tapes) {
    if (!tape->recording()) continue;
    bool wanted = false;
    for (const Tensor& t : inputs) wanted = wanted || tape_wants(tape, t);
    if (!wanted) continue;
    if (!shared) shared = std::make_shared<const BackwardFn>(std::move(backward));
    Node& node = tape->nodes.emplace_back();
    node.op_name = op;
    node.backward = shared;
    for (const Tensor& t : inputs) {
      node.input_ids.push_back(t.defined() ? t.id() : 0);
      if (tape_wants(tape, t)) tape->tracked.insert(t.id());
    }
    for (const Tensor& t : outputs) {
      node.output_ids.push_back(t.id());
      if (outputs.size() > 1) node.outputs.emplace_back(t.shape(), t.dtype());
      if (is_floating(t.dtype())) tape->tracked.insert(t.id());
    }
  }
}

void record_without_second_order(const char* op, const std::vector<Tensor>& inputs,
                                  const std::vector<Tensor>& outputs) {
  if (!should_record(inputs)) return;  // the common case (inside gradient()): build nothing
  record_without_second_order(ops::Attrs(op), inputs, outputs);
}

void record_without_second_order(const ops::Attrs& call, const std::vector<Tensor>& inputs,
                                  const std::vector<Tensor>& outputs) {
  if (!should_record(inputs)) return;
  std::string name = call.op();
  record(call, inputs, outputs, [name](const std::vector<Tensor>&) -> std::vector<Tensor> {
    throw std::runtime_error("gradient of " + name +
                             " (itself a backward op) is not implemented: higher-order "
                             "gradients through this op are unsupported");
  });
}

}  // namespace kiln::autograd
