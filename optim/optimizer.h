#pragma once
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "autograd/variable.h"
#include "optim/schedules.h"
#include "tensor/tensor.h"

namespace kiln::optim {

// At most one of these may be set, as in Keras (which one runs first would otherwise matter).
struct ClipOptions {
  float clipnorm = 0.f;         // >0: clip each gradient to this L2 norm
  float global_clipnorm = 0.f;  // >0: scale all gradients so their joint L2 norm is at most this
  float clipvalue = 0.f;        // >0: clamp each gradient element to [-clipvalue, clipvalue]
};

// How weight_decay acts. Keras decays every optimizer's weights directly; PyTorch's SGD, Adam
// and RMSprop add an L2 term to the gradient instead, which momentum and the adaptive
// denominators then rescale (PyTorch's AdamW decays the weights as Keras does).
enum class WeightDecayStyle {
  decoupled,       // w -= learning_rate * weight_decay * w, before the optimizer's own step
  l2_in_gradient,  // g += weight_decay * w, after clipping
};

// Keras's base optimizer arguments, resolved from an optimizer's options struct.
struct BaseOptions {
  std::shared_ptr<LearningRateSchedule> schedule;
  float weight_decay = 0.f;
  WeightDecayStyle weight_decay_style = WeightDecayStyle::decoupled;
  // Variables whose name contains one of these strings are not decayed (Keras's
  // exclude_from_weight_decay(var_names=...), with plain substrings instead of regexes).
  std::vector<std::string> exclude_from_weight_decay;
  ClipOptions clip;
};

// The schedule an options struct asks for: its schedule, or a constant learning_rate (the
// optimizer's Keras default when neither is given). Giving both is an error, because one of
// them would be silently ignored.
std::shared_ptr<LearningRateSchedule> resolve_schedule(const std::string& optimizer, std::optional<float> learning_rate,
                                                       std::shared_ptr<LearningRateSchedule> schedule,
                                                       float default_learning_rate);

// The most steps an optimizer counts: files store the count in two 31-bit halves (training
// checkpoints), and a step past it must fail rather than wrap. Loads check against it.
constexpr int64_t kMaxIterations = (int64_t{1} << 62) - 1;

// Base of all optimizers: owns per-variable slots (momentum, moments), the step counter, the
// learning-rate schedule, gradient clipping and weight decay, in Keras's order: clip the
// gradients, decay the weights, then run the optimizer's own step. Updates run as fused loops
// over f32 master weights; gradients of another float dtype (bf16) are upcast first.
// A row-sparse gradient (tensor/row_sparse.h: an embedding's, from gather) is clipped and
// applied from its rows alone, with the numbers of the dense rule and no dense gradient (see
// add_row_sparse_slices); packed weights and pytorch_style L2 decay densify it.
class Optimizer {
 public:
  Optimizer(std::string name, BaseOptions options);
  virtual ~Optimizer() = default;

  // Applies one step. Undefined gradients (unconnected variables) are skipped, as Keras does.
  void apply_gradients(const std::vector<Tensor>& grads, const std::vector<Variable>& vars);

  const std::string& name() const { return name_; }
  int64_t iterations() const { return iterations_; }
  // Throws std::invalid_argument for a count outside [0, kMaxIterations].
  void set_iterations(int64_t it);
  float learning_rate() const;  // for the next step
  // True when the learning rate comes from a schedule other than a constant.
  bool has_schedule() const;
  // Sets a constant learning rate. Like Keras's learning_rate setter, this refuses (throws
  // std::logic_error) when has_schedule(): replacing a schedule is set_schedule's job.
  void set_learning_rate(float lr);
  void set_schedule(std::shared_ptr<LearningRateSchedule> schedule);
  const ClipOptions& clip_options() const { return base_.clip; }
  float weight_decay() const { return base_.weight_decay; }

  // Moves existing slots of vars into their variables' current layouts (kiln::optimize packs
  // weights; their slots follow so the update runs in one layout).
  void follow_variable_layouts(const std::vector<Variable>& vars);

  // The same optimizer configuration with fresh state.
  virtual std::unique_ptr<Optimizer> clone() const = 0;

  // Slot tensors for checkpoints, named "<variable name>/<slot name>", for vars in order.
  std::vector<std::pair<std::string, Tensor>> slot_state(const std::vector<Variable>& vars);
  // Replaces the slots of vars with those written by slot_state (a variable without saved
  // slots starts fresh); checks everything first, so a throw naming the slot changes nothing.
  void load_slot_state(const std::vector<Variable>& vars, const std::vector<std::pair<std::string, Tensor>>& state);
  // Throws, changing nothing, when load_slot_state would: a slot of the wrong shape or dtype,
  // or an entry that names no slot of this optimizer for these variables.
  void check_slot_state(const std::vector<Variable>& vars,
                        const std::vector<std::pair<std::string, Tensor>>& state) const;

 protected:
  // The current schedule (clone() copies it, so a changed learning rate carries over).
  const std::shared_ptr<LearningRateSchedule>& schedule() const { return base_.schedule; }
  virtual std::vector<std::string> slot_names() const = 0;
  // The optimizer's own step for n contiguous elements of one variable, after clipping and
  // weight decay: master weights, gradient and slots share one layout (row-major, or the
  // blocked layout kiln::optimize packed the variable into). apply_gradients cuts a step's
  // variables into slices that several threads update at once, so update() must start no
  // threads of its own. slots holds one pointer per slot name; step is 1-based.
  virtual void update(float* w, const float* g, float* const* slots, int64_t n, float lr, int64_t step) = 0;
  // True when update() with a zero gradient changes neither the weights nor the slots (plain
  // SGD): a row-sparse gradient's update then skips the rows it does not hold.
  virtual bool zero_gradient_changes_nothing() const { return false; }

 private:
  std::vector<Tensor>& slots_for(const Variable& var);
  bool decays(const Variable& var) const;
  // One variable's share of a fused step.
  struct Slice {
    float* w;
    const float* g;
    size_t first_slot;  // its slots are work_slots_[first_slot, first_slot + num_slots)
    size_t num_slots;
    int64_t n;
    float decay;  // decoupled weight decay factor lr * weight_decay, or 0
  };
  void run_fused_update(float lr, int64_t step);
  void add_row_sparse_slices(const Tensor& w, const Tensor& g, const std::vector<Tensor>& slots, float decay);

  std::string name_;
  BaseOptions base_;
  int64_t iterations_ = 0;
  std::unordered_map<uint64_t, std::vector<Tensor>> slots_;  // by variable value id
  std::vector<Slice> work_;         // reused across steps: no heap traffic per step
  std::vector<float*> work_slots_;  // every slice's slot pointers, likewise reused
  std::vector<Tensor> work_grads_;  // keeps converted gradients alive during the update
  std::vector<float> zero_gradient_;  // what row-sparse updates read for rows they do not hold
};

// Joint L2 norm of all defined gradients, and the gradients scaled to at most max_norm.
struct ClippedGradients {
  std::vector<Tensor> grads;
  float global_norm;
};
ClippedGradients clip_by_global_norm(const std::vector<Tensor>& grads, float max_norm);
float global_norm(const std::vector<Tensor>& grads);

}  // namespace kiln::optim
