#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "autograd/variable.h"
#include "optim/schedules.h"
#include "tensor/tensor.h"

namespace kiln::optim {

struct ClipOptions {
  float clipnorm = 0.f;         // >0: clip each gradient to this L2 norm
  float global_clipnorm = 0.f;  // >0: scale all gradients so their joint L2 norm is at most this
  float clipvalue = 0.f;        // >0: clamp each gradient element to [-clipvalue, clipvalue]
};

// Base of all optimizers: owns per-variable slots (momentum, moments), the step counter and
// the learning-rate schedule. Updates run as fused loops over f32 master weights; gradients of
// another float dtype (bf16) are upcast first.
class Optimizer {
 public:
  Optimizer(std::string name, std::shared_ptr<LearningRateSchedule> schedule, ClipOptions clip);
  virtual ~Optimizer() = default;

  // Applies one step. Undefined gradients (unconnected variables) are skipped, as Keras does.
  void apply_gradients(const std::vector<Tensor>& grads, const std::vector<Variable>& vars);

  const std::string& name() const { return name_; }
  int64_t iterations() const { return iterations_; }
  void set_iterations(int64_t it) { iterations_ = it; }
  float learning_rate() const;  // for the next step
  void set_learning_rate(float lr);  // replaces the schedule with a constant
  void set_schedule(std::shared_ptr<LearningRateSchedule> schedule);
  const ClipOptions& clip_options() const { return clip_; }

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
  const std::shared_ptr<LearningRateSchedule>& schedule() const { return schedule_; }
  virtual std::vector<std::string> slot_names() const = 0;
  // One step for n contiguous elements. slots holds one pointer per slot name; step is 1-based.
  virtual void update(float* w, const float* g, const std::vector<float*>& slots, int64_t n, float lr,
                      int64_t step) = 0;

 private:
  std::vector<Tensor>& slots_for(const Variable& var);

  std::string name_;
  std::shared_ptr<LearningRateSchedule> schedule_;
  ClipOptions clip_;
  int64_t iterations_ = 0;
  std::unordered_map<uint64_t, std::vector<Tensor>> slots_;  // by variable value id
};

// Joint L2 norm of all defined gradients, and the gradients scaled to at most max_norm.
struct ClippedGradients {
  std::vector<Tensor> grads;
  float global_norm;
};
ClippedGradients clip_by_global_norm(const std::vector<Tensor>& grads, float max_norm);
float global_norm(const std::vector<Tensor>& grads);

}  // namespace kiln::optim
