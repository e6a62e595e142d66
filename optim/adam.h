#pragma once
#include "optim/optimizer.h"

namespace kiln::optim {

// Keras Adam (keras/src/optimizers/adam.py), at step t (1-based) with gradient g:
//   m += (1 - beta_1) * (g - m);  v += (1 - beta_2) * (g^2 - v)
//   alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
//   w -= alpha * m / (sqrt(v) + epsilon)
// epsilon is Kingma and Ba's "epsilon hat": it is added to the root of the uncorrected v, so
// early steps are damped more than with PyTorch's placement. amsgrad divides by the running
// maximum of v instead of v. weight_decay first decays the weights, w -= lr * weight_decay * w
// (Keras's base optimizer), which makes Adam with weight_decay the same as AdamW.
//
// pytorch_style (torch.optim.Adam / AdamW): w -= lr / (1 - beta_1^t) * m /
// (sqrt(v / (1 - beta_2^t)) + epsilon), with amsgrad's maximum taken over v; Adam's
// weight_decay becomes an L2 term g += weight_decay * w, AdamW's stays decoupled. PyTorch's
// default epsilon is 1e-8: set it when reproducing PyTorch.
// Adam's and AdamW's options hold the same fields; only weight_decay's default differs (Keras:
// 0 for Adam, 0.004 for AdamW). Two types, so that AdamWOptions{} keeps AdamW's default.
template <typename Defaults>
struct AdamFamilyOptions {
  std::optional<float> learning_rate;              // 0.001 unless a schedule is given
  std::shared_ptr<LearningRateSchedule> schedule;  // instead of learning_rate
  float beta_1 = 0.9f;
  float beta_2 = 0.999f;
  float epsilon = 1e-7f;
  bool amsgrad = false;
  float weight_decay = Defaults::kWeightDecay;
  std::vector<std::string> exclude_from_weight_decay;  // substrings of variable names
  ClipOptions clip;
  bool pytorch_style = false;
};
struct AdamDefaults {
  static constexpr float kWeightDecay = 0.f;
};
struct AdamWDefaults {
  static constexpr float kWeightDecay = 0.004f;
};
using AdamOptions = AdamFamilyOptions<AdamDefaults>;
using AdamWOptions = AdamFamilyOptions<AdamWDefaults>;

class Adam : public Optimizer {
 public:
  explicit Adam(AdamOptions options = {});
  explicit Adam(float learning_rate) : Adam(AdamOptions{.learning_rate = learning_rate}) {}
  std::unique_ptr<Optimizer> clone() const override;
  // As constructed; learning_rate() gives the rate in force.
  const AdamOptions& options() const { return options_; }

 protected:
  Adam(std::string name, AdamOptions options, WeightDecayStyle pytorch_decay_style);
  std::vector<std::string> slot_names() const override;
  void update(float* w, const float* g, float* const* slots, int64_t n, float lr, int64_t step) override;

  AdamOptions options_;
};

// Adam with decoupled weight decay (Loshchilov and Hutter), Keras's and PyTorch's alike.
class AdamW : public Adam {
 public:
  explicit AdamW(AdamWOptions options = {});
  explicit AdamW(float learning_rate) : AdamW(AdamWOptions{.learning_rate = learning_rate}) {}
  std::unique_ptr<Optimizer> clone() const override;
};

}  // namespace kiln::optim
