#include "nn/losses.h"

#include <stdexcept>

#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

constexpr float kEpsilon = 1e-7f;  // Keras backend epsilon: keeps log() finite on probabilities

Tensor f32(const Tensor& t) { return is_floating(t.dtype()) ? cast(t, DType::f32) : cast(t, DType::f32); }

void check_same_shape(const Tensor& a, const Tensor& b, const std::string& loss) {
  if (a.shape() != b.shape()) {
    throw std::invalid_argument(loss + ": y_true " + a.describe() + " and y_pred " + b.describe() +
                                " must have the same shape");
  }
}

Tensor categorical_from_targets(const Tensor& targets, const Tensor& pred, bool from_logits) {
  Tensor logp = from_logits ? log_softmax(pred, -1) : log(clip(pred / reduce_sum(pred, {-1}, true), kEpsilon, 1.f - kEpsilon));
  return reduce_mean(-reduce_sum(targets * logp, {-1}));
}

}  // namespace

Tensor SparseCategoricalCrossentropy::operator()(const Tensor& y_true, const Tensor& y_pred_in) const {
  if (!y_true.defined() || !y_pred_in.defined()) throw std::invalid_argument(name() + ": undefined input");
  Tensor y_pred = f32(y_pred_in);
  if (y_pred.ndim() != 2) throw std::invalid_argument(name() + ": y_pred must be [batch, classes], got " + y_pred.describe());
  Tensor labels = y_true;
  if (labels.ndim() == 2 && labels.shape()[1] == 1) labels = reshape(labels, {labels.shape()[0]});
  if (labels.ndim() != 1 || labels.shape()[0] != y_pred.shape()[0]) {
    throw std::invalid_argument(name() + ": labels " + y_true.describe() + " do not match predictions " +
                                y_pred.describe() + " (expected [" + std::to_string(y_pred.shape()[0]) + "])");
  }
  if (is_floating(labels.dtype())) labels = cast(labels, DType::s32);
  if (from_logits_) return sparse_softmax_cross_entropy(y_pred, labels);
  return categorical_from_targets(one_hot(labels, y_pred.shape()[1]), y_pred, from_logits_);
}

Tensor CategoricalCrossentropy::operator()(const Tensor& y_true, const Tensor& y_pred_in) const {
  Tensor y_pred = f32(y_pred_in), targets = f32(y_true);
  check_same_shape(targets, y_pred, name());
  if (y_pred.ndim() < 1) throw std::invalid_argument(name() + ": scalar predictions");
  if (label_smoothing_ > 0) {
    float c = static_cast<float>(y_pred.shape().back());
    targets = targets * (1.f - label_smoothing_) + label_smoothing_ / c;
  }
  return categorical_from_targets(targets, y_pred, from_logits_);
}

Tensor BinaryCrossentropy::operator()(const Tensor& y_true, const Tensor& y_pred_in) const {
  Tensor y_pred = f32(y_pred_in), z = f32(y_true);
  check_same_shape(z, y_pred, name());
  if (from_logits_) return reduce_mean(softplus(y_pred) - y_pred * z);  // stable form of -z log s - (1-z) log(1-s)
  Tensor p = clip(y_pred, kEpsilon, 1.f - kEpsilon);
  return reduce_mean(-(z * log(p) + (1.f - z) * log(1.f - p)));
}

Tensor MeanSquaredError::operator()(const Tensor& y_true, const Tensor& y_pred_in) const {
  Tensor y_pred = f32(y_pred_in), t = f32(y_true);
  check_same_shape(t, y_pred, name());
  return reduce_mean(square(y_pred - t));
}

}  // namespace kiln::nn
