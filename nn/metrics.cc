#include "nn/metrics.h"

#include <cmath>
#include <stdexcept>

namespace kiln::nn {
namespace {

// Element values of y_true and y_pred, which must hold the same number of elements.
std::pair<std::vector<float>, std::vector<float>> same_size_values(const std::string& metric, const Tensor& y_true,
                                                                   const Tensor& y_pred) {
  if (y_true.numel() != y_pred.numel()) {
    throw std::invalid_argument(metric + ": y_true " + y_true.describe() + " and y_pred " + y_pred.describe() +
                                " differ in size");
  }
  return {y_true.to_vector(), y_pred.to_vector()};
}

class SparseCategoricalAccuracy : public Metric {
 public:
  using Metric::Metric;
  void update_state(const Tensor& y_true, const Tensor& y_pred) override {
    if (y_pred.ndim() != 2) throw std::invalid_argument(name() + ": predictions must be [batch, classes], got " + y_pred.describe());
    std::vector<int32_t> labels = y_true.to_int32();
    if (static_cast<int64_t>(labels.size()) != y_pred.shape()[0]) {
      throw std::invalid_argument(name() + ": labels " + y_true.describe() + " do not match predictions " + y_pred.describe());
    }
    std::vector<float> p = y_pred.to_vector();
    int64_t c = y_pred.shape()[1], correct = 0;
    for (size_t i = 0; i < labels.size(); ++i) {
      const float* row = p.data() + i * c;
      int64_t best = 0;
      for (int64_t j = 1; j < c; ++j) best = row[j] > row[best] ? j : best;
      correct += best == labels[i];
    }
    add(correct, labels.size());
  }
  std::unique_ptr<Metric> clone() const override { return std::make_unique<SparseCategoricalAccuracy>(name()); }
};

class CategoricalAccuracy : public Metric {
 public:
  using Metric::Metric;
  void update_state(const Tensor& y_true, const Tensor& y_pred) override {
    if (y_true.shape() != y_pred.shape() || y_pred.ndim() != 2) {
      throw std::invalid_argument(name() + ": y_true " + y_true.describe() + " and y_pred " + y_pred.describe() +
                                  " must both be [batch, classes]");
    }
    std::vector<float> t = y_true.to_vector(), p = y_pred.to_vector();
    int64_t n = y_pred.shape()[0], c = y_pred.shape()[1], correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      int64_t bt = 0, bp = 0;
      for (int64_t j = 1; j < c; ++j) {
        bt = t[i * c + j] > t[i * c + bt] ? j : bt;
        bp = p[i * c + j] > p[i * c + bp] ? j : bp;
      }
      correct += bt == bp;
    }
    add(correct, n);
  }
  std::unique_ptr<Metric> clone() const override { return std::make_unique<CategoricalAccuracy>(name()); }
};

class BinaryAccuracy : public Metric {
 public:
  BinaryAccuracy(std::string name, float threshold) : Metric(std::move(name)), threshold_(threshold) {}
  void update_state(const Tensor& y_true, const Tensor& y_pred) override {
    auto [t, p] = same_size_values(name(), y_true, y_pred);
    int64_t correct = 0;
    for (size_t i = 0; i < t.size(); ++i) correct += (p[i] > threshold_) == (t[i] > 0.5f);
    add(correct, t.size());
  }
  std::unique_ptr<Metric> clone() const override { return std::make_unique<BinaryAccuracy>(name(), threshold_); }

 private:
  float threshold_;
};

class ErrorMetric : public Metric {
 public:
  ErrorMetric(std::string name, bool squared) : Metric(std::move(name)), squared_(squared) {}
  void update_state(const Tensor& y_true, const Tensor& y_pred) override {
    auto [t, p] = same_size_values(name(), y_true, y_pred);
    double s = 0;
    for (size_t i = 0; i < t.size(); ++i) s += squared_ ? (p[i] - t[i]) * (p[i] - t[i]) : std::fabs(p[i] - t[i]);
    add(s, t.size());
  }
  std::unique_ptr<Metric> clone() const override { return std::make_unique<ErrorMetric>(name(), squared_); }

 private:
  bool squared_;
};

}  // namespace

void Mean::update_state(const Tensor&, const Tensor& value) { update(value.item()); }

std::unique_ptr<Metric> make_metric(const std::string& name, const Loss& loss) {
  std::string kind = name == "accuracy" || name == "acc" ? loss.accuracy_metric() : name;
  if (kind == "sparse_categorical_accuracy") return std::make_unique<SparseCategoricalAccuracy>(name);
  if (kind == "categorical_accuracy") return std::make_unique<CategoricalAccuracy>(name);
  if (kind == "binary_accuracy") return std::make_unique<BinaryAccuracy>(name, 0.5f);
  if (kind == "binary_accuracy_logits") return std::make_unique<BinaryAccuracy>(name, 0.0f);
  if (kind == "mean_squared_error" || kind == "mse") return std::make_unique<ErrorMetric>(name, true);
  if (kind == "mean_absolute_error" || kind == "mae") return std::make_unique<ErrorMetric>(name, false);
  throw std::invalid_argument("unknown metric '" + name +
                              "' (expected accuracy, sparse_categorical_accuracy, categorical_accuracy, "
                              "binary_accuracy, mse or mae)");
}

}  // namespace kiln::nn
