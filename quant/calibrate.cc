#include "quant/calibrate.h"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "tensor/ops/registry.h"

namespace kiln::quant {
namespace {

void check_batch(const graph::Value& input, const data::Batch& b, int64_t index) {
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument("observe: the graph input '" + input.name + "' expects " + graph::value_type(input) +
                                ", calibration batch " + std::to_string(index) + " " + what);
  };
  if (!b.x.defined()) fail("has no x");
  if (!graph::accepts(input, b.x)) fail("is " + b.x.describe());
  if (b.x.ndim() == 0 || b.x.shape()[0] == 0) fail("is " + b.x.describe() + " (no examples)");
}

void check_dataset(const graph::Graph& g, const data::Dataset& calib, const CalibrationOptions& options) {
  if (g.inputs.size() != 1) {
    throw std::invalid_argument("observe: the graph has " + std::to_string(g.inputs.size()) +
                                " inputs; calibration supports graphs with exactly one input");
  }
  if (options.max_batches == 0 || options.max_batches < -1) {
    throw std::invalid_argument("observe: max_batches = " + std::to_string(options.max_batches) +
                                " must be positive, or -1 for the whole dataset");
  }
  if (!calib.batched()) {
    throw std::invalid_argument("observe: the calibration dataset is not batched; call .batch(n) on it first");
  }
  const int64_t n = calib.cardinality();
  if (n == 0) throw std::invalid_argument("observe: the calibration dataset is empty");
  if (n < 0 && options.max_batches < 0) {
    throw std::invalid_argument("observe: the calibration dataset is infinite (repeat()); set max_batches");
  }
}

// For each value, the last node that reads it (-1: none), so a batch's intermediates are freed
// as soon as they are observed and consumed rather than all held to the end.
std::vector<int> last_uses(const graph::Graph& g) {
  std::vector<int> last(g.values.size(), -1);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    for (int i : g.nodes[k].inputs) last[i] = static_cast<int>(k);
  }
  return last;
}

}  // namespace

Calibration observe(const graph::Graph& g, const data::Dataset& calib, const CalibrationOptions& options) {
  check_dataset(g, calib, options);
  g.validate();
  // Fail on bad options before running anything.
  (void)threshold(HistogramObserver(), options.method, options.threshold_options());

  const int input = g.inputs[0];
  const std::vector<int> last = last_uses(g);
  std::vector<bool> is_constant(g.values.size(), false);
  for (const graph::Constant& c : g.constants) is_constant[c.value] = true;

  Calibration result;
  auto observe_value = [&](int v, const Tensor& t) {
    if (!is_constant[v] && is_floating(t.dtype())) result.observers[v].update(t);
  };

  std::vector<Tensor> env(g.values.size());
  data::BatchIterator it = calib.begin_iteration();
  while (options.max_batches < 0 || result.batches < options.max_batches) {
    std::optional<data::Batch> batch = it.next();
    if (!batch) break;
    check_batch(g.values[input], *batch, result.batches);
    for (const graph::Constant& c : g.constants) env[c.value] = c.tensor;
    env[input] = batch->x;
    observe_value(input, batch->x);
    for (size_t k = 0; k < g.nodes.size(); ++k) {
      const graph::Node& node = g.nodes[k];
      std::vector<Tensor> args;
      args.reserve(node.inputs.size());
      for (int i : node.inputs) args.push_back(env[i]);
      std::vector<Tensor> outs = ops::run_op(node.call, args);
      if (outs.size() != node.outputs.size()) {
        throw std::logic_error("observe: " + node.call.op() + " returned " + std::to_string(outs.size()) +
                               " outputs, the graph expects " + std::to_string(node.outputs.size()));
      }
      for (size_t o = 0; o < outs.size(); ++o) {
        observe_value(node.outputs[o], outs[o]);
        env[node.outputs[o]] = std::move(outs[o]);
      }
      for (int i : node.inputs) {
        if (last[i] == static_cast<int>(k) && !is_constant[i]) env[i] = Tensor();
      }
    }
    std::fill(env.begin(), env.end(), Tensor());
    ++result.batches;
    result.examples += batch->x.shape()[0];
  }
  if (result.batches == 0) throw std::invalid_argument("observe: the calibration dataset is empty");

  for (const auto& [v, o] : result.observers) {
    if (o.nan_count() || o.inf_count()) {
      const graph::Node* producer = nullptr;
      for (const graph::Node& node : g.nodes) {
        for (int out : node.outputs) producer = out == v ? &node : producer;
      }
      result.warnings.push_back("value '" + g.values[v].name + "' (" + (producer ? producer->call.op() : "input") +
                                "): " + std::to_string(o.nan_count()) + " NaN, " + std::to_string(o.inf_count()) +
                                " inf");
    }
  }
  return result;
}

std::map<int, QuantParams> activation_params(const graph::Graph& g, const Calibration& calibration,
                                             const CalibrationOptions& options) {
  std::map<int, QuantParams> params;
  for (const auto& [v, o] : calibration.observers) {
    if (v < 0 || v >= static_cast<int>(g.values.size())) {
      throw std::invalid_argument("activation_params: the calibration observed value " + std::to_string(v) +
                                  ", which this graph (" + std::to_string(g.values.size()) + " values) does not have");
    }
    try {
      params[v] = activation_params(o, options.method, options.threshold_options());
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("activation_params: value '" + g.values[v].name + "': " + e.what());
    }
  }
  return params;
}

}  // namespace kiln::quant
