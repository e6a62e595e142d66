#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "graph/graph.h"
#include "nn/model.h"
#include "quant/calibrate.h"
#include "runtime_export/inference_model.h"

namespace kiln::quant {

// Intel Neural Compressor's accuracy criterion: a trial is accepted when its metric drops by
// at most `relative` (a fraction of the baseline) or, when absolute > 0, by at most `absolute`.
struct AccuracyCriterion {
  double relative = 0.01;
  double absolute = 0;
  bool higher_is_better = true;
};

// A metric over a whole evaluation set: predictions [N, ...] (f32) and the labels.
using MetricFn = std::function<double(const Tensor& predictions, const Tensor& labels)>;

struct QuantizeOptions {
  DType precision = DType::s8;  // s8: int8 (u8/s8 activations, s8 weights); bf16
  CalibrationOptions calibration = {};
  // Accuracy control (BigDL-Nano's quantize(metric=..., accuracy_criterion=...)). Without a
  // metric the model is fully quantized and nothing is searched.
  std::string metric;  // "accuracy" (argmax against sparse or one-hot labels), or empty...
  MetricFn metric_fn;  // ...with a callable instead
  std::optional<data::Dataset> eval_data;
  AccuracyCriterion accuracy_criterion = {};
  int max_trials = 10;
  double timeout_s = 0;  // 0: no limit
  // "basic": fully quantize; then keep the most sensitive layers in f32, one more per trial
  // (sensitivity: output error with only that layer quantized). "calibration": one fully
  // quantized trial per calibration method (minmax, percentile, kl).
  std::string tuning_strategy = "basic";
  bool verbose = true;  // one printed row per trial
};

struct Trial {
  int index = 0;
  std::string config;  // "int8 minmax, f32: conv2d_1/kernel"
  double metric = 0;
  double relative_drop = 0;  // (baseline - metric) / |baseline|, sign-adjusted for lower-is-better
  double latency_ms = 0;     // one evaluation batch, median of 5
  bool accepted = false;
};

struct QuantizationReport {
  double baseline = 0;  // the f32 model's metric
  std::vector<Trial> trials;
  int chosen = -1;  // index into trials; -1 without a metric
};

// No trial met the criterion within max_trials / timeout_s: carries the best one found.
class AccuracyNotMet : public std::runtime_error {
 public:
  AccuracyNotMet(const std::string& what, Trial best, double baseline)
      : std::runtime_error(what), best(std::move(best)), baseline(baseline) {}
  Trial best;
  double baseline;
};

// BigDL-Nano's quantize(model, calib_data, ...): an InferenceModel in int8 (or bf16) with
// the model's predict/evaluate. calib is a batched dataset of the model's input (labels
// ignored). Throws std::invalid_argument for an empty calibration set, calibration data of
// the wrong shape or dtype, unknown options, a metric without eval_data or a metric that
// throws; AccuracyNotMet when no trial meets the criterion.
std::unique_ptr<runtime_export::InferenceModel> quantize(nn::Model& model, const data::Dataset& calib,
                                                         const QuantizeOptions& options = {},
                                                         QuantizationReport* report = nullptr);
// The same from an f32 inference graph (traced; the passes run first).
std::unique_ptr<runtime_export::InferenceModel> quantize(const graph::Graph& graph, const data::Dataset& calib,
                                                         const QuantizeOptions& options = {},
                                                         QuantizationReport* report = nullptr);

// The same for a graph with several inputs (a BERT's input_ids and attention_mask): each
// calibration batch holds one tensor per graph input (quant::observe's overload). Without
// accuracy control: a metric is refused (eval_data feeds one input).
std::unique_ptr<runtime_export::InferenceModel> quantize(const graph::Graph& graph,
                                                         const std::vector<std::vector<Tensor>>& calib,
                                                         const QuantizeOptions& options = {},
                                                         QuantizationReport* report = nullptr);

// Top-1 accuracy of scores [N, C] against sparse labels [N] / [N, 1] or one-hot [N, C].
double top1_accuracy(const Tensor& predictions, const Tensor& labels);

}  // namespace kiln::quant
