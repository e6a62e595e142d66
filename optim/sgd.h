#pragma once
#include "optim/optimizer.h"

namespace kiln::optim {

// Keras SGD (keras/src/optimizers/sgd.py), with gradient g and learning rate lr:
//   momentum 0:  w -= lr * g
//   momentum m:  velocity = m * velocity - lr * g;  w += velocity
//   nesterov:    velocity = m * velocity - lr * g;  w += m * velocity - lr * g
// weight_decay first decays the weights, w -= lr * weight_decay * w (Keras's base optimizer).
//
// pytorch_style (torch.optim.SGD, dampening 0): g += weight_decay * w; buf = m * buf + g;
// w -= lr * buf (nesterov: w -= lr * (g + m * buf)). With a constant learning rate the
// momentum forms agree; they part when it changes, because Keras's velocity keeps the old
// rates and PyTorch's buffer takes the new one. The L2 term is a different regularizer
// whenever momentum is on.
struct SGDOptions {
  std::optional<float> learning_rate;                 // 0.01 unless a schedule is given
  std::shared_ptr<LearningRateSchedule> schedule;     // instead of learning_rate
  float momentum = 0.f;                               // in [0, 1]
  bool nesterov = false;                              // needs momentum > 0
  float weight_decay = 0.f;
  std::vector<std::string> exclude_from_weight_decay;  // substrings of variable names
  ClipOptions clip;
  bool pytorch_style = false;
};

class SGD : public Optimizer {
 public:
  explicit SGD(SGDOptions options = {});
  explicit SGD(float learning_rate) : SGD(SGDOptions{.learning_rate = learning_rate}) {}
  std::unique_ptr<Optimizer> clone() const override;
  // As constructed; learning_rate() gives the rate in force.
  const SGDOptions& options() const { return options_; }

 protected:
  std::vector<std::string> slot_names() const override;
  void update(float* w, const float* g, float* const* slots, int64_t n, float lr, int64_t step) override;
  bool zero_gradient_changes_nothing() const override { return options_.momentum == 0; }

 private:
  SGDOptions options_;
};

}  // namespace kiln::optim
