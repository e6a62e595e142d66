#pragma once
#include "optim/optimizer.h"

namespace kiln::optim {

// PyTorch-style SGD: L2 weight decay added to the gradient, momentum buffer b = m*b + g,
// w -= lr * b (nesterov: w -= lr * (g + m*b)).
class SGD : public Optimizer {
 public:
  explicit SGD(float lr = 0.01f, float momentum = 0.f, bool nesterov = false, float weight_decay = 0.f,
               ClipOptions clip = {});
  SGD(std::shared_ptr<LearningRateSchedule> lr, float momentum = 0.f, bool nesterov = false,
      float weight_decay = 0.f, ClipOptions clip = {});
  std::unique_ptr<Optimizer> clone() const override;

 protected:
  std::vector<std::string> slot_names() const override;
  void update(float* w, const float* g, const std::vector<float*>& slots, int64_t n, float lr, int64_t step) override;

 private:
  float momentum_, weight_decay_;
  bool nesterov_;
};

// Adam with bias correction (Keras defaults: beta_1 0.9, beta_2 0.999, epsilon 1e-7).
// AdamW adds decoupled weight decay: w -= lr * weight_decay * w before the Adam step.
class Adam : public Optimizer {
 public:
  explicit Adam(float lr = 1e-3f, float beta_1 = 0.9f, float beta_2 = 0.999f, float epsilon = 1e-7f,
                ClipOptions clip = {});
  Adam(std::shared_ptr<LearningRateSchedule> lr, float beta_1 = 0.9f, float beta_2 = 0.999f, float epsilon = 1e-7f,
       ClipOptions clip = {});
  std::unique_ptr<Optimizer> clone() const override;

 protected:
  Adam(std::string name, std::shared_ptr<LearningRateSchedule> lr, float beta_1, float beta_2, float epsilon,
       float weight_decay, ClipOptions clip);
  std::vector<std::string> slot_names() const override;
  void update(float* w, const float* g, const std::vector<float*>& slots, int64_t n, float lr, int64_t step) override;

  float beta_1_, beta_2_, epsilon_, weight_decay_;
};

class AdamW : public Adam {
 public:
  explicit AdamW(float lr = 1e-3f, float weight_decay = 0.004f, float beta_1 = 0.9f, float beta_2 = 0.999f,
                 float epsilon = 1e-7f, ClipOptions clip = {});
  AdamW(std::shared_ptr<LearningRateSchedule> lr, float weight_decay = 0.004f, float beta_1 = 0.9f,
        float beta_2 = 0.999f, float epsilon = 1e-7f, ClipOptions clip = {});
  std::unique_ptr<Optimizer> clone() const override;
};

// Keras RMSprop: v = rho*v + (1-rho)*g^2; w -= lr * g / (sqrt(v) + epsilon), with optional
// momentum and centering.
class RMSprop : public Optimizer {
 public:
  explicit RMSprop(float lr = 1e-3f, float rho = 0.9f, float momentum = 0.f, float epsilon = 1e-7f,
                   bool centered = false, ClipOptions clip = {});
  RMSprop(std::shared_ptr<LearningRateSchedule> lr, float rho = 0.9f, float momentum = 0.f, float epsilon = 1e-7f,
          bool centered = false, ClipOptions clip = {});
  std::unique_ptr<Optimizer> clone() const override;

 protected:
  std::vector<std::string> slot_names() const override;
  void update(float* w, const float* g, const std::vector<float*>& slots, int64_t n, float lr, int64_t step) override;

 private:
  float rho_, momentum_, epsilon_;
  bool centered_;
};

}  // namespace kiln::optim
