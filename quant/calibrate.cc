#include "quant/calibrate.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <stdexcept>

#include "tensor/ops/registry.h"

namespace kiln::quant {
namespace {

// A batch's tensors, one per graph input, against the graph's inputs.
void check_batch(const graph::Graph& g, const std::vector<Tensor>& xs, int64_t index) {
  if (xs.size() != g.inputs.size()) {
    throw std::invalid_argument("observe: calibration batch " + std::to_string(index) + " has " + std::to_string(xs.size()) +
                                " tensors for the graph's " + std::to_string(g.inputs.size()) + " inputs");
  }
  for (size_t i = 0; i < xs.size(); ++i) {
    const graph::Value& input = g.values[g.inputs[i]];
    auto fail = [&](const std::string& what) {
      throw std::invalid_argument("observe: the graph input '" + input.name + "' expects " + graph::value_type(input) +
                                  ", calibration batch " + std::to_string(index) + " " + what);
    };
    if (!xs[i].defined()) fail("has no x");
    if (!graph::accepts(input, xs[i])) fail("is " + xs[i].describe());
    if (xs[i].ndim() == 0 || xs[i].shape()[0] == 0) fail("is " + xs[i].describe() + " (no examples)");
    if (xs[i].shape()[0] != xs[0].shape()[0]) fail("is " + xs[i].describe() + ", another batch size than its first input's");
  }
}

void check_options(const CalibrationOptions& options) {
  if (options.max_batches == 0 || options.max_batches < -1) {
    throw std::invalid_argument("observe: max_batches = " + std::to_string(options.max_batches) +
                                " must be positive, or -1 for the whole dataset");
  }
  // Fail on bad options before running anything.
  (void)threshold(HistogramObserver(), options.method, options.threshold_options());
}

void check_dataset(const graph::Graph& g, const data::Dataset& calib, const CalibrationOptions& options) {
  if (g.inputs.size() != 1) {
    throw std::invalid_argument("observe: the graph has " + std::to_string(g.inputs.size()) +
                                " inputs; a Dataset calibrates graphs with exactly one input (pass one std::vector<Tensor> "
                                "per batch, a tensor per input, for several)");
  }
  check_options(options);
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

Calibration observe_batches(const graph::Graph& g, const std::function<std::optional<std::vector<Tensor>>()>& next,
                            const CalibrationOptions& options) {
  g.validate();
  const std::vector<int> last = last_uses(g);
  std::vector<bool> is_constant(g.values.size(), false);
  for (const graph::Constant& c : g.constants) is_constant[c.value] = true;

  Calibration result;
  auto observe_value = [&](int v, const Tensor& t) {
    if (!is_constant[v] && is_floating(t.dtype())) result.observers[v].update(t);
  };

  std::vector<Tensor> env(g.values.size());
  while (options.max_batches < 0 || result.batches < options.max_batches) {
    std::optional<std::vector<Tensor>> xs = next();
    if (!xs) break;
    check_batch(g, *xs, result.batches);
    for (const graph::Constant& c : g.constants) env[c.value] = c.tensor;
    for (size_t i = 0; i < xs->size(); ++i) {
      env[g.inputs[i]] = (*xs)[i];
      observe_value(g.inputs[i], (*xs)[i]);
    }
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
    result.examples += (*xs)[0].shape()[0];
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

}  // namespace

Calibration observe(const graph::Graph& g, const data::Dataset& calib, const CalibrationOptions& options) {
  check_dataset(g, calib, options);
  data::BatchIterator it = calib.begin_iteration();
  return observe_batches(g, [&]() -> std::optional<std::vector<Tensor>> {
    std::optional<data::Batch> b = it.next();
    if (!b) return std::nullopt;
    return std::vector<Tensor>{b->x};
  }, options);
}

Calibration observe(const graph::Graph& g, const std::vector<std::vector<Tensor>>& batches, const CalibrationOptions& options) {
  check_options(options);
  if (batches.empty()) throw std::invalid_argument("observe: no calibration batches");
  size_t next = 0;
  return observe_batches(g, [&]() -> std::optional<std::vector<Tensor>> {
    if (next == batches.size()) return std::nullopt;
    return batches[next++];
  }, options);
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
