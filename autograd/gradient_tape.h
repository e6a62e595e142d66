#pragma once
#include <functional>
#include <vector>

#include "tensor/ops/recorder.h"
#include "autograd/variable.h"
#include "tensor/tensor.h"

namespace kiln {

enum class UnconnectedGradients { none, zero };

// Records differentiable ops for automatic differentiation, as tf.GradientTape. Recording
// starts at construction and lasts for the tape's lifetime (the C++ form of `with`).
// Trainable variables read by recorded ops are watched automatically; other tensors need
// watch(). Tapes nest: an outer tape also records the ops an inner tape's gradient() runs,
// so it can differentiate them again.
class GradientTape {
 public:
  explicit GradientTape(bool persistent = false, bool watch_accessed_variables = true);
  ~GradientTape();
  GradientTape(const GradientTape&) = delete;
  GradientTape& operator=(const GradientTape&) = delete;

  void watch(const Tensor& t);
  void watch(const Variable& v) { watch(v.value()); }

  // Gradients of target (summed over its elements unless output_gradient is given) with
  // respect to each source; a source that target does not depend on gets an undefined
  // Tensor, or zeros with UnconnectedGradients::zero. A non-persistent tape answers once and
  // then releases everything it recorded.
  std::vector<Tensor> gradient(const Tensor& target, const std::vector<Tensor>& sources,
                               const Tensor& output_gradient = Tensor(),
                               UnconnectedGradients unconnected = UnconnectedGradients::none);
  std::vector<Tensor> gradient(const Tensor& target, const std::vector<Variable>& sources,
                               const Tensor& output_gradient = Tensor(),
                               UnconnectedGradients unconnected = UnconnectedGradients::none);
  Tensor gradient(const Tensor& target, const Tensor& source);

  // While the returned guard lives, ops are not recorded on this tape.
  class Pause {
   public:
    explicit Pause(autograd::TapeState* s) : s_(s) { s_->paused++; }
    ~Pause() { s_->paused--; }
    Pause(const Pause&) = delete;
    Pause& operator=(const Pause&) = delete;

   private:
    autograd::TapeState* s_;
  };
  [[nodiscard]] Pause stop_recording() { return Pause(&state_); }
  // Forgets everything recorded so far; recording continues.
  void reset();

  // Called by the next gradient() once per source whose gradient is final (no op left to
  // visit adds to it), in the order backward produces them, with the source's index and its
  // gradient (undefined when unconnected): data-parallel training starts communicating a
  // gradient while backward still runs. The hook is cleared when gradient() returns.
  using GradientHook = std::function<void(size_t source_index, const Tensor& gradient)>;
  void set_gradient_hook(GradientHook hook) { hook_ = std::move(hook); }

  size_t num_recorded_ops() const { return state_.nodes.size(); }
  bool persistent() const { return state_.persistent; }

 private:
  autograd::TapeState state_;
  GradientHook hook_;
};

}  // namespace kiln
