#include "quant/quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>

#include "graph/trace.h"
#include "nn/batch_rows.h"
#include "quant/quantize_graph.h"
#include "graph/passes/optimize_for_inference.h"
#include "quant/dense_matmuls.h"
#include "tensor/ops/ops.h"

namespace kiln::quant {
namespace {

using Clock = std::chrono::steady_clock;
using runtime_export::InferenceModel;

Tensor first_batch(const data::Dataset& ds, const char* what) {
  if (!ds.batched()) throw std::invalid_argument(std::string("quantize: the ") + what + " dataset must be batched (call batch())");
  data::BatchIterator it = ds.begin_iteration();
  auto b = it.next();
  if (!b) throw std::invalid_argument(std::string("quantize: the ") + what + " dataset is empty");
  return b->x;
}

// The metric of a model over the evaluation set, with errors of a user metric named.
struct Evaluator {
  const QuantizeOptions& options;
  Tensor x_first;

  double operator()(const InferenceModel& m) const {
    const int64_t batches = options.eval_data->cardinality();
    if (batches < 0) throw std::invalid_argument("quantize: eval_data is infinite (repeat() without a count)");
    if (batches == 0) throw std::invalid_argument("quantize: eval_data is empty");
    nn::BatchRows preds("quantize: eval_data predictions", 0, batches), labels("quantize: eval_data labels", 0, batches);
    data::BatchIterator it = options.eval_data->begin_iteration();
    while (auto b = it.next()) {
      if (!b->y.defined()) throw std::invalid_argument("quantize: eval_data has no labels");
      preds.append(m.run(b->x));
      labels.append(b->y);
    }
    Tensor p = preds.result();
    Tensor y = labels.result();
    double value;
    try {
      value = options.metric_fn ? options.metric_fn(p, y) : top1_accuracy(p, y);
    } catch (const std::exception& e) {
      throw std::invalid_argument(std::string("quantize: the metric threw: ") + e.what());
    }
    if (!std::isfinite(value)) throw std::invalid_argument("quantize: the metric returned " + std::to_string(value));
    return value;
  }

  double latency_ms(const InferenceModel& m) const {
    m.run(x_first);
    std::vector<double> ms;
    for (int i = 0; i < 5; ++i) {
      auto t0 = Clock::now();
      m.run(x_first);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[2];
  }
};

std::map<int, ActivationQuant> activation_quant(const graph::Graph& g, const Calibration& c,
                                                const CalibrationOptions& options) {
  std::map<int, ActivationQuant> out;
  for (const auto& [value, p] : activation_params(g, c, options)) out[value] = {p.dtype, p.scale};
  return out;
}

// Output error of the calibration batch with only node k quantized: how much that layer
// alone costs.
std::vector<std::pair<double, int>> sensitivities(const graph::Graph& g, const std::map<int, ActivationQuant>& act,
                                                  const std::vector<Tensor>& x) {
  std::vector<int> candidates = quantizable_nodes(g);
  std::vector<float> ref = InferenceModel(g, {.optimize = false}).run(x)[0].to_vector();
  std::vector<std::pair<double, int>> out;
  for (int k : candidates) {
    std::set<int> others(candidates.begin(), candidates.end());
    others.erase(k);
    std::vector<float> got = InferenceModel(quantize_graph(g, act, {.keep_float = others}), {.optimize = false}).run(x)[0].to_vector();
    double mse = 0;
    for (size_t i = 0; i < ref.size(); ++i) mse += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    out.push_back({mse / std::max<size_t>(ref.size(), 1), k});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

std::string layer_name(const graph::Graph& g, int node) { return g.values[g.nodes[node].inputs[1]].name; }

void check_options(const QuantizeOptions& o) {
  if (o.precision != DType::s8 && o.precision != DType::bf16) {
    throw std::invalid_argument(std::string("quantize: precision must be s8 (int8) or bf16, got ") + dtype_name(o.precision));
  }
  if (!o.metric.empty() && o.metric != "accuracy") {
    throw std::invalid_argument("quantize: unknown metric '" + o.metric + "' (\"accuracy\", or pass metric_fn)");
  }
  bool searching = !o.metric.empty() || o.metric_fn;
  if (searching && !o.eval_data) throw std::invalid_argument("quantize: a metric needs eval_data");
  if (o.tuning_strategy != "basic" && o.tuning_strategy != "calibration") {
    throw std::invalid_argument("quantize: unknown tuning_strategy '" + o.tuning_strategy + "' (basic or calibration)");
  }
  if (o.max_trials < 1) throw std::invalid_argument("quantize: max_trials must be at least 1");
  if (o.timeout_s < 0) throw std::invalid_argument("quantize: timeout_s must be >= 0 (0: no limit)");
  const AccuracyCriterion& c = o.accuracy_criterion;
  if (c.relative < 0 || c.absolute < 0) throw std::invalid_argument("quantize: the accuracy criterion must be >= 0");
}

}  // namespace

double top1_accuracy(const Tensor& predictions, const Tensor& labels) {
  if (predictions.ndim() != 2) throw std::invalid_argument("accuracy: predictions must be [N, C], got " + predictions.describe());
  std::vector<int32_t> pred = argmax(predictions, -1).to_int32();
  std::vector<int32_t> want;
  if (labels.ndim() == 2 && labels.shape()[1] == predictions.shape()[1] && labels.shape()[1] > 1) {
    want = argmax(cast(labels, DType::f32), -1).to_int32();
  } else {
    want = cast(labels, DType::s32).to_int32();
  }
  if (want.size() != pred.size()) {
    throw std::invalid_argument("accuracy: " + labels.describe() + " labels for " + predictions.describe() + " predictions");
  }
  size_t hits = 0;
  for (size_t i = 0; i < pred.size(); ++i) hits += pred[i] == want[i];
  return pred.empty() ? 0.0 : double(hits) / pred.size();
}

namespace {

// What quantize() calibrates with: observe() over the caller's data, and the first batch's
// inputs (for the layer sensitivities).
struct CalibrationSource {
  std::function<Calibration(const graph::Graph&, const CalibrationOptions&)> observe;
  std::vector<Tensor> first_inputs;
};

std::unique_ptr<InferenceModel> quantize_with(const graph::Graph& traced, const CalibrationSource& calib,
                                              const QuantizeOptions& options, QuantizationReport* report) {
  graph::Graph g = graph::passes::optimize_for_inference(dense_matmuls_as_linear(traced));
  QuantizationReport local;
  QuantizationReport& rep = report ? *report : local;
  rep = {};
  const bool searching = !options.metric.empty() || options.metric_fn;

  // Each trial's graph; calibration runs once per method.
  std::map<CalibrationMethod, std::map<int, ActivationQuant>> ranges;
  auto ranges_for = [&](CalibrationMethod method) -> const std::map<int, ActivationQuant>& {
    auto it = ranges.find(method);
    if (it != ranges.end()) return it->second;
    CalibrationOptions c = options.calibration;
    c.method = method;
    return ranges[method] = activation_quant(g, calib.observe(g, c), c);
  };
  auto build = [&](CalibrationMethod method, const std::set<int>& keep) {
    if (options.precision == DType::bf16) return std::make_unique<InferenceModel>(g, runtime_export::InferenceOptions{.dtype = DType::bf16, .optimize = false});
    return std::make_unique<InferenceModel>(quantize_graph(g, ranges_for(method), {.keep_float = keep}),
                                            runtime_export::InferenceOptions{.optimize = false});
  };
  if (!searching) {
    if (options.precision == DType::s8) ranges_for(options.calibration.method);  // validates calib in full
    return build(options.calibration.method, {});
  }

  Evaluator evaluate{options, first_batch(*options.eval_data, "eval_data")};
  rep.baseline = evaluate(InferenceModel(g, {.optimize = false}));
  const AccuracyCriterion& crit = options.accuracy_criterion;
  auto drop_of = [&](double m) {
    double d = crit.higher_is_better ? rep.baseline - m : m - rep.baseline;
    return d;
  };
  auto accepted = [&](double m) {
    double d = drop_of(m);
    return crit.absolute > 0 ? d <= crit.absolute : d <= crit.relative * std::fabs(rep.baseline);
  };
  if (options.verbose) {
    std::printf("quantize: baseline (f32) %s = %.4f; criterion: %s drop <= %g\n",
                options.metric_fn ? "metric" : options.metric.c_str(), rep.baseline,
                crit.absolute > 0 ? "absolute" : "relative", crit.absolute > 0 ? crit.absolute : crit.relative);
    std::printf("%-6s %-58s %-10s %-9s %-10s %s\n", "trial", "configuration", "metric", "drop", "latency", "result");
  }
  const auto start = Clock::now();
  std::unique_ptr<InferenceModel> chosen;
  auto try_config = [&](const std::string& config, CalibrationMethod method, const std::set<int>& keep) {
    auto m = build(method, keep);
    Trial t;
    t.index = static_cast<int>(rep.trials.size()) + 1;
    t.config = config;
    t.metric = evaluate(*m);
    t.relative_drop = rep.baseline != 0 ? drop_of(t.metric) / std::fabs(rep.baseline) : drop_of(t.metric);
    t.latency_ms = evaluate.latency_ms(*m);
    t.accepted = accepted(t.metric);
    if (options.verbose) {
      std::printf("%-6d %-58s %-10.4f %-9s %-10s %s\n", t.index, config.substr(0, 58).c_str(), t.metric,
                  (std::to_string(t.relative_drop * 100).substr(0, 5) + "%").c_str(),
                  (std::to_string(t.latency_ms).substr(0, 6) + " ms").c_str(), t.accepted ? "accepted" : "rejected");
      std::fflush(stdout);
    }
    rep.trials.push_back(t);
    if (t.accepted && (rep.chosen < 0 || t.latency_ms < rep.trials[rep.chosen].latency_ms)) {
      rep.chosen = static_cast<int>(rep.trials.size()) - 1;
      chosen = std::move(m);
    }
    return t.accepted;
  };
  auto out_of_budget = [&] {
    if (static_cast<int>(rep.trials.size()) >= options.max_trials) return true;
    return options.timeout_s > 0 && std::chrono::duration<double>(Clock::now() - start).count() >= options.timeout_s;
  };
  const std::string precision = options.precision == DType::bf16 ? "bf16" : "int8";

  if (options.precision == DType::bf16) {
    try_config("bf16", options.calibration.method, {});
  } else if (options.tuning_strategy == "calibration") {
    for (CalibrationMethod m : {CalibrationMethod::minmax, CalibrationMethod::percentile, CalibrationMethod::kl}) {
      if (out_of_budget()) break;
      try_config(precision + " " + calibration_method_name(m), m, {});
    }
  } else {
    const CalibrationMethod m = options.calibration.method;
    std::string base = precision + " " + calibration_method_name(m);
    if (!try_config(base, m, {}) && !out_of_budget()) {
      std::vector<std::pair<double, int>> order = sensitivities(g, ranges_for(m), calib.first_inputs);
      std::set<int> keep;
      std::string kept;
      for (const auto& [error, node] : order) {
        if (out_of_budget()) break;
        keep.insert(node);
        kept += (kept.empty() ? "" : ", ") + layer_name(g, node);
        if (try_config(base + ", f32: " + kept, m, keep)) break;
      }
    }
  }
  if (rep.chosen < 0) {
    const Trial* best = nullptr;
    for (const Trial& t : rep.trials) {
      if (!best || drop_of(t.metric) < drop_of(best->metric)) best = &t;
    }
    std::string what = "quantize: no configuration met the accuracy criterion in " + std::to_string(rep.trials.size()) +
                       " trials (baseline " + std::to_string(rep.baseline) + "; best: trial " + std::to_string(best->index) +
                       " '" + best->config + "' with " + std::to_string(best->metric) + ", a " +
                       std::to_string(best->relative_drop * 100) + "% drop)";
    throw AccuracyNotMet(what, *best, rep.baseline);
  }
  return chosen;
}

}  // namespace

std::unique_ptr<InferenceModel> quantize(const graph::Graph& traced, const data::Dataset& calib,
                                         const QuantizeOptions& options, QuantizationReport* report) {
  check_options(options);
  Tensor x_calib = first_batch(calib, "calibration");
  if (traced.inputs.size() == 1 && !graph::accepts(traced.values[traced.inputs[0]], x_calib)) {
    throw std::invalid_argument("quantize: the calibration data's batches are " + x_calib.describe() +
                                ", but the graph's input takes " + graph::value_type(traced.values[traced.inputs[0]]));
  }
  return quantize_with(traced, {[&](const graph::Graph& g, const CalibrationOptions& c) { return observe(g, calib, c); }, {x_calib}},
                       options, report);
}

std::unique_ptr<InferenceModel> quantize(const graph::Graph& traced, const std::vector<std::vector<Tensor>>& calib,
                                         const QuantizeOptions& options, QuantizationReport* report) {
  check_options(options);
  if (calib.empty()) throw std::invalid_argument("quantize: no calibration batches");
  if (!options.metric.empty() || options.metric_fn) {
    throw std::invalid_argument("quantize: accuracy control evaluates eval_data, a Dataset of one input per example; "
                                "a graph calibrated with per-input batches (this one has " + std::to_string(traced.inputs.size()) +
                                " inputs) is quantized without a metric");
  }
  return quantize_with(traced, {[&](const graph::Graph& g, const CalibrationOptions& c) { return observe(g, calib, c); }, calib[0]},
                       options, report);
}

std::unique_ptr<InferenceModel> quantize(nn::Model& model, const data::Dataset& calib, const QuantizeOptions& options,
                                         QuantizationReport* report) {
  check_options(options);
  Tensor sample = first_batch(calib, "calibration");
  // Tracing runs the model on this batch: a wrong shape must be named here, as calibration
  // data, not by whichever layer first trips on it.
  if (std::optional<std::pair<Shape, DType>> want = model.built_input()) {
    Shape got = sample.ndim() > 0 ? Shape(sample.shape().begin() + 1, sample.shape().end()) : Shape{};
    if (sample.ndim() == 0 || got != want->first || sample.dtype() != want->second) {
      throw std::invalid_argument("quantize: the calibration data's batches are " + sample.describe() + ", but model '" +
                                  model.name() + "' takes " + dtype_name(want->second) + "[N" +
                                  (want->first.empty() ? "" : ", ") + shape_str(want->first).substr(1));
    }
  }
  std::unique_ptr<InferenceModel> out = quantize(graph::trace(model, sample), calib, options, report);
  if (model.compiled()) out->compile(model.optimizer(), model.loss(), model.metric_names());
  return out;
}

}  // namespace kiln::quant
