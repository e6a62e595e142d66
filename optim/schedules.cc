#include "optim/schedules.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace kiln::optim {

StepDecay::StepDecay(float initial, int64_t step_size, float gamma)
    : initial_(initial), step_size_(step_size), gamma_(gamma) {
  if (step_size <= 0) throw std::invalid_argument("StepDecay: step_size must be positive, got " + std::to_string(step_size));
}

float StepDecay::operator()(int64_t step) const {
  return initial_ * std::pow(gamma_, static_cast<float>(step / step_size_));
}

CosineDecay::CosineDecay(float initial, int64_t decay_steps, float alpha)
    : initial_(initial), decay_steps_(decay_steps), alpha_(alpha) {
  if (decay_steps <= 0) throw std::invalid_argument("CosineDecay: decay_steps must be positive, got " + std::to_string(decay_steps));
}

float CosineDecay::operator()(int64_t step) const {
  double p = std::min<double>(step, decay_steps_) / decay_steps_;
  double cosine = 0.5 * (1 + std::cos(M_PI * p));
  return static_cast<float>(initial_ * ((1 - alpha_) * cosine + alpha_));
}

LinearWarmup::LinearWarmup(int64_t warmup_steps, std::shared_ptr<LearningRateSchedule> after)
    : warmup_steps_(warmup_steps), after_(std::move(after)) {
  if (warmup_steps < 0) throw std::invalid_argument("LinearWarmup: negative warmup_steps");
  if (!after_) throw std::invalid_argument("LinearWarmup: no schedule to warm up into");
}

float LinearWarmup::operator()(int64_t step) const {
  if (step < warmup_steps_) return (*after_)(0) * static_cast<float>(step + 1) / static_cast<float>(warmup_steps_);
  return (*after_)(step - warmup_steps_);
}

}  // namespace kiln::optim
