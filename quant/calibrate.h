#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "graph/graph.h"
#include "quant/observer.h"
#include "quant/params.h"
#include "quant/threshold.h"

namespace kiln::quant {

struct CalibrationOptions {
  CalibrationMethod method = CalibrationMethod::minmax;
  double percentile = 99.99;  // for method = percentile, in (0, 100]
  int kl_target_bins = 128;   // for method = kl (see ThresholdOptions)
  int64_t max_batches = -1;   // -1: the whole dataset (which must then be finite)

  ThresholdOptions threshold_options() const { return {.percentile = percentile, .kl_target_bins = kl_target_bins}; }
};

// What observe() saw: one observer per floating value of the graph (its input and every node
// output), keyed by the value's index in Graph::values. Constants are not observed.
struct Calibration {
  std::map<int, HistogramObserver> observers;
  int64_t batches = 0;
  int64_t examples = 0;
  // One line per value that produced NaN or inf during calibration (those values are
  // skipped by its observer): "value '%7' (conv2d): 12 NaN, 0 inf".
  std::vector<std::string> warnings;
};

// Runs every batch of calib (up to options.max_batches) through g node by node with the
// eager ops (ops::run_op) and updates one observer per floating value. calib must be batched;
// each batch's x feeds the graph's single input (labels, if any, are ignored). Throws
// std::invalid_argument naming what is wrong for: a graph with several inputs (use the overload below),
// an invalid graph, an unbatched, empty or infinite (without max_batches) dataset,
// max_batches == 0 or < -1, and a batch whose dtype, rank or non-batch dims differ from the
// graph input ("... expects u8[N, 28, 28, 1], batch 0 is f32[32, 28, 28]").
Calibration observe(const graph::Graph& g, const data::Dataset& calib, const CalibrationOptions& options = {});
// The same for a graph with any number of inputs: each batch holds one tensor per graph
// input, in Graph::inputs order, all with the same batch size (a BERT's input_ids and
// attention_mask). Throws std::invalid_argument for no batches, or a batch with another
// number of tensors, a tensor the input does not accept, or mismatched batch sizes.
Calibration observe(const graph::Graph& g, const std::vector<std::vector<Tensor>>& batches,
                    const CalibrationOptions& options = {});

// activation_params() for every observed value with options.method. Throws
// std::invalid_argument naming the value when its observer saw no finite value.
std::map<int, QuantParams> activation_params(const graph::Graph& g, const Calibration& calibration,
                                             const CalibrationOptions& options = {});

}  // namespace kiln::quant
