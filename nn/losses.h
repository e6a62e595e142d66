#pragma once
#include <memory>
#include <string>

#include "tensor/tensor.h"

namespace kiln::nn {

// A Keras loss: the mean over the batch of a per-example loss, computed in f32 whatever the
// prediction dtype (mixed precision keeps the loss in f32).
class Loss {
 public:
  virtual ~Loss() = default;
  virtual Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const = 0;
  virtual std::unique_ptr<Loss> clone() const = 0;
  virtual std::string name() const = 0;
  // The metric "accuracy" means for this loss (Keras resolves it the same way).
  virtual std::string accuracy_metric() const { return "categorical_accuracy"; }
};

// Integer labels [N] (or [N, 1]) against scores [N, C].
class SparseCategoricalCrossentropy : public Loss {
 public:
  explicit SparseCategoricalCrossentropy(bool from_logits = false) : from_logits_(from_logits) {}
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const override;
  std::unique_ptr<Loss> clone() const override { return std::make_unique<SparseCategoricalCrossentropy>(*this); }
  std::string name() const override { return "sparse_categorical_crossentropy"; }
  std::string accuracy_metric() const override { return "sparse_categorical_accuracy"; }
  bool from_logits() const { return from_logits_; }

 private:
  bool from_logits_;
};

// One-hot (or soft) targets [N, C] against scores [N, C].
class CategoricalCrossentropy : public Loss {
 public:
  explicit CategoricalCrossentropy(bool from_logits = false, float label_smoothing = 0.f)
      : from_logits_(from_logits), label_smoothing_(label_smoothing) {}
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const override;
  std::unique_ptr<Loss> clone() const override { return std::make_unique<CategoricalCrossentropy>(*this); }
  std::string name() const override { return "categorical_crossentropy"; }
  bool from_logits() const { return from_logits_; }
  float label_smoothing() const { return label_smoothing_; }

 private:
  bool from_logits_;
  float label_smoothing_;
};

// Targets in {0, 1} (or probabilities) against scores of the same shape.
class BinaryCrossentropy : public Loss {
 public:
  explicit BinaryCrossentropy(bool from_logits = false) : from_logits_(from_logits) {}
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const override;
  std::unique_ptr<Loss> clone() const override { return std::make_unique<BinaryCrossentropy>(*this); }
  std::string name() const override { return "binary_crossentropy"; }
  std::string accuracy_metric() const override { return from_logits_ ? "binary_accuracy_logits" : "binary_accuracy"; }
  bool from_logits() const { return from_logits_; }

 private:
  bool from_logits_;
};

class MeanSquaredError : public Loss {
 public:
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const override;
  std::unique_ptr<Loss> clone() const override { return std::make_unique<MeanSquaredError>(*this); }
  std::string name() const override { return "mean_squared_error"; }
};

}  // namespace kiln::nn
