#pragma once
#include <memory>

namespace kiln::optim {

// Learning rate as a function of the optimizer step (0-based), as Keras LearningRateSchedule.
class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  virtual float operator()(int64_t step) const = 0;
  virtual std::shared_ptr<LearningRateSchedule> clone() const = 0;
};

class ConstantLR : public LearningRateSchedule {
 public:
  explicit ConstantLR(float lr) : lr_(lr) {}
  float operator()(int64_t) const override { return lr_; }
  float learning_rate() const { return lr_; }
  std::shared_ptr<LearningRateSchedule> clone() const override { return std::make_shared<ConstantLR>(*this); }

 private:
  float lr_;
};

// initial * gamma ^ floor(step / step_size)
class StepDecay : public LearningRateSchedule {
 public:
  StepDecay(float initial, int64_t step_size, float gamma);
  float operator()(int64_t step) const override;
  float initial() const { return initial_; }
  int64_t step_size() const { return step_size_; }
  float gamma() const { return gamma_; }
  std::shared_ptr<LearningRateSchedule> clone() const override { return std::make_shared<StepDecay>(*this); }

 private:
  float initial_;
  int64_t step_size_;
  float gamma_;
};

// Cosine from initial down to initial * alpha over decay_steps, then flat (Keras CosineDecay).
class CosineDecay : public LearningRateSchedule {
 public:
  CosineDecay(float initial, int64_t decay_steps, float alpha = 0.f);
  float operator()(int64_t step) const override;
  float initial() const { return initial_; }
  int64_t decay_steps() const { return decay_steps_; }
  float alpha() const { return alpha_; }
  std::shared_ptr<LearningRateSchedule> clone() const override { return std::make_shared<CosineDecay>(*this); }

 private:
  float initial_;
  int64_t decay_steps_;
  float alpha_;
};

// Linear ramp from 0 to after(warmup_steps) over warmup_steps, then after(step - warmup_steps).
class LinearWarmup : public LearningRateSchedule {
 public:
  LinearWarmup(int64_t warmup_steps, std::shared_ptr<LearningRateSchedule> after);
  float operator()(int64_t step) const override;
  int64_t warmup_steps() const { return warmup_steps_; }
  const std::shared_ptr<LearningRateSchedule>& after() const { return after_; }
  std::shared_ptr<LearningRateSchedule> clone() const override { return std::make_shared<LinearWarmup>(*this); }

 private:
  int64_t warmup_steps_;
  std::shared_ptr<LearningRateSchedule> after_;
};

}  // namespace kiln::optim
