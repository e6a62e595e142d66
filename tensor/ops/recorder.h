#pragma once
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "tensor/ops/attrs.h"
#include "tensor/ops/id_table.h"
#include "tensor/scoped_override.h"
#include "tensor/tensor.h"

namespace kiln::autograd {

// Given the gradients of an op's outputs, returns the gradients of its inputs (an undefined
// Tensor where an input gets none). Backward functions are written with Kiln ops, so an
// outer tape records them and can differentiate again.
using BackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& output_grads)>;

struct Node {
  std::string op_name;  // the op's registered kind
  const char* op() const { return op_name.c_str(); }
  IdList input_ids;     // 0 for an undefined input
  IdList output_ids;
  // Shapes and dtypes of the outputs, kept only for ops with several (the backward of such an
  // op needs zeros for the outputs that got no gradient; a single output always has one).
  std::vector<std::pair<Shape, DType>> outputs;
  std::shared_ptr<const BackwardFn> backward;  // shared by every tape that recorded the op
};

// The recording state of one GradientTape.
struct TapeState {
  bool persistent = false;
  bool watch_accessed_variables = true;
  int paused = 0;         // stop_recording() depth; while >0 nothing is recorded here
  bool consumed = false;  // a non-persistent tape after gradient(): records nothing more
  std::vector<Node> nodes;
  IdSet tracked;  // watched tensors and outputs of recorded ops

  bool recording() const { return paused == 0 && !consumed; }
};

void push_tape(TapeState* tape);
// Deactivates the tape and releases what it recorded.
void pop_tape(TapeState* tape);
// Forgets what the tape recorded, handing its containers (with their capacity) to the next
// tape on this thread.
void release_tape(TapeState* tape);
bool any_tape_active();

// True when some active tape tracks one of inputs (cheap when no tape is active); ops build
// their backward closure only then.
bool should_record(std::initializer_list<const Tensor*> inputs);
bool should_record(const std::vector<Tensor>& inputs);

// Inside a backward function: whether the gradient of input `index` is wanted (it leads to a
// source of the gradient() call). Backward functions may return an undefined Tensor for
// inputs that are not, and skip their work; outside gradient() this is always true.
bool needs_input_grad(size_t index);

// Set by GradientTape::gradient around each backward call.
class NeedsGradScope {
 public:
  explicit NeedsGradScope(const std::vector<bool>* needs);

 private:
  ScopedOverride<const std::vector<bool>*> override_;
};

// For ops with no gradient (comparisons, argmax, one_hot): only an OpObserver sees them.
void observe(const ops::Attrs& call, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs);
// Whether an OpObserver is installed on this thread.
bool observing();

// Records an op call on every active tape that tracks one of its inputs, and reports it to
// this thread's OpObserver (trace). `call` names the op's registered kind and attributes.
void record(const ops::Attrs& call, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn backward);
void record(const char* op, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn backward);
// The tapes' half of record(): the observer is not told.
void record_on_tapes(const char* op, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
                     BackwardFn backward);
// As record(call, ...), for ops whose attributes only an OpObserver reads: make_attrs() runs
// only while one is installed, so a training step builds no attribute strings or vectors.
template <typename MakeAttrs>
void record_lazy(const char* op, MakeAttrs&& make_attrs, const std::vector<Tensor>& inputs,
                 const std::vector<Tensor>& outputs, BackwardFn backward) {
  if (observing()) observe(make_attrs(), inputs, outputs);
  record_on_tapes(op, inputs, outputs, std::move(backward));
}

// Sees every op call on its thread while installed (trace() builds a Graph from them). While
// one is installed, should_record() is true, so every op reports itself.
class OpObserver {
 public:
  virtual ~OpObserver() = default;
  virtual void on_op(const ops::Attrs& call, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) = 0;
};
// Installs observer on this thread for the scope's lifetime (they nest).
class ObserverScope {
 public:
  explicit ObserverScope(OpObserver* observer);

 private:
  ScopedOverride<OpObserver*> override_;
};

// Hides this thread's tapes and observer for the scope's lifetime, so that a composite op
// (fused_conv2d, ...) computed from other ops records itself once, not its parts.
class QuietScope {
 public:
  QuietScope();
  ~QuietScope();
  QuietScope(const QuietScope&) = delete;
  QuietScope& operator=(const QuietScope&) = delete;

 private:
  std::vector<TapeState*> tapes_;
  OpObserver* observer_;
};

// For ops whose gradient is computed by a dedicated oneDNN backward primitive: recorded so an
// outer tape sees the dependency, and differentiating it again raises a clear error.
void record_without_second_order(const char* op, const std::vector<Tensor>& inputs,
                                 const std::vector<Tensor>& outputs);
void record_without_second_order(const ops::Attrs& call, const std::vector<Tensor>& inputs,
                                 const std::vector<Tensor>& outputs);

}  // namespace kiln::autograd
