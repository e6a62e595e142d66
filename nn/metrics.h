#pragma once
#include <memory>
#include <string>

#include "nn/losses.h"
#include "tensor/tensor.h"

namespace kiln::nn {

// A streaming metric, as keras.metrics.Metric: update_state per batch, result() over all
// batches since reset_state().
class Metric {
 public:
  explicit Metric(std::string name) : name_(std::move(name)) {}
  virtual ~Metric() = default;
  virtual void update_state(const Tensor& y_true, const Tensor& y_pred) = 0;
  double result() const { return count_ > 0 ? total_ / count_ : 0.0; }
  void reset_state() { total_ = count_ = 0; }
  const std::string& name() const { return name_; }
  virtual std::unique_ptr<Metric> clone() const = 0;
  // The running total and count, for merging the metric over processes (dist/).
  std::pair<double, double> state() const { return {total_, count_}; }
  void set_state(double total, double count) {
    total_ = total;
    count_ = count;
  }

 protected:
  void add(double total, double count) {
    total_ += total;
    count_ += count;
  }

 private:
  std::string name_;
  double total_ = 0, count_ = 0;
};

// Mean of the values given (the "loss" entry of the logs).
class Mean : public Metric {
 public:
  explicit Mean(std::string name) : Metric(std::move(name)) {}
  void update_state(const Tensor&, const Tensor& value) override;
  void update(double value, double weight = 1.0) { add(value * weight, weight); }
  std::unique_ptr<Metric> clone() const override { return std::make_unique<Mean>(name()); }
};

// Resolves a Keras metric name: "accuracy"/"acc" (as the loss implies), "sparse_categorical_accuracy",
// "categorical_accuracy", "binary_accuracy", "mean_squared_error"/"mse", "mean_absolute_error"/"mae".
// The metric is reported under the name the user gave.
std::unique_ptr<Metric> make_metric(const std::string& name, const Loss& loss);

}  // namespace kiln::nn
