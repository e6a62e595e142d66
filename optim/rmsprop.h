#pragma once
#include "optim/optimizer.h"

namespace kiln::optim {

// Keras RMSprop (keras/src/optimizers/rmsprop.py), with gradient g:
//   v = rho * v + (1 - rho) * g^2
//   centered: a = rho * a + (1 - rho) * g;  denominator = sqrt(v - a^2 + epsilon)
//   else:                                    denominator = sqrt(v + epsilon)
//   increment = lr * g / denominator
//   momentum > 0: buf = momentum * buf + increment;  w -= buf
//   else:         w -= increment
// epsilon sits inside the root, so for gradients much smaller than sqrt(epsilon) the step is
// about lr * g / sqrt(epsilon), not lr * sign(g). weight_decay first decays the weights,
// w -= lr * weight_decay * w (Keras's base optimizer).
//
// pytorch_style (torch.optim.RMSprop, where rho is called alpha): denominator =
// sqrt(v [- a^2]) + epsilon; the momentum buffer holds g / denominator and w -= lr * buf; and
// weight_decay is an L2 term g += weight_decay * w. PyTorch's defaults are rho 0.99 and
// epsilon 1e-8: set them when reproducing PyTorch.
struct RMSpropOptions {
  std::optional<float> learning_rate;              // 0.001 unless a schedule is given
  std::shared_ptr<LearningRateSchedule> schedule;  // instead of learning_rate
  float rho = 0.9f;
  float momentum = 0.f;
  float epsilon = 1e-7f;
  bool centered = false;
  float weight_decay = 0.f;
  std::vector<std::string> exclude_from_weight_decay;  // substrings of variable names
  ClipOptions clip;
  bool pytorch_style = false;
};

class RMSprop : public Optimizer {
 public:
  explicit RMSprop(RMSpropOptions options = {});
  explicit RMSprop(float learning_rate) : RMSprop(RMSpropOptions{.learning_rate = learning_rate}) {}
  std::unique_ptr<Optimizer> clone() const override;
  // As constructed; learning_rate() gives the rate in force.
  const RMSpropOptions& options() const { return options_; }

 protected:
  std::vector<std::string> slot_names() const override;
  void update(float* w, const float* g, float* const* slots, int64_t n, float lr, int64_t step) override;

 private:
  RMSpropOptions options_;
};

}  // namespace kiln::optim
