#include "runtime_export/inference_model.h"

#include <cmath>
#include <stdexcept>

#include "graph/trace.h"
#include "graph/passes/optimize_for_inference.h"
#include "tensor/ops/ops.h"

namespace kiln::runtime_export {
namespace {

// Constants become the model's own copies: later training of the source changes nothing here.
graph::Graph frozen(graph::Graph g) {
  for (graph::Constant& c : g.constants) c.tensor = c.tensor.clone_detached();
  return g;
}

bool finite(const Tensor& t) {
  if (t.dtype() != DType::f32 && t.dtype() != DType::bf16) return true;
  return std::isfinite(detail::max_abs(t));
}

bool is_float(DType d) { return d == DType::f32 || d == DType::bf16; }

// Whether some node turns float data into u8/s8 (quantize_linear, or a cast): NaN has no
// integer, so past such a node a NaN input no longer shows in the output on its own.
bool quantizes_floats(const graph::Graph& g) {
  for (const graph::Node& n : g.nodes) {
    bool float_in = false, int8_out = false;
    for (int i : n.inputs) float_in = float_in || is_float(g.values[i].dtype);
    for (int o : n.outputs) int8_out = int8_out || g.values[o].dtype == DType::u8 || g.values[o].dtype == DType::s8;
    if (float_in && int8_out) return true;
  }
  return false;
}

// Rows (along dimension 0, the batch) of any float input that hold a NaN.
std::vector<bool> nan_rows(const std::vector<Tensor>& inputs, int64_t batch) {
  std::vector<bool> rows(static_cast<size_t>(batch), false);
  for (const Tensor& x : inputs) {
    if (!is_float(x.dtype()) || x.ndim() == 0 || x.shape()[0] != batch || batch == 0) continue;
    std::vector<float> v = x.to_vector();
    const size_t per_row = v.size() / static_cast<size_t>(batch);
    for (size_t k = 0; k < v.size(); ++k) {
      if (std::isnan(v[k])) rows[k / per_row] = true;
    }
  }
  return rows;
}

}  // namespace

InferenceModel::InferenceModel(graph::Graph graph, const InferenceOptions& options, const std::string& name)
    : nn::Model(name.empty() ? "inference_model" : name), options_(options) {
  if (options.dtype != DType::f32 && options.dtype != DType::bf16) {
    throw std::invalid_argument(std::string("InferenceModel: dtype must be f32 or bf16, got ") + dtype_name(options.dtype));
  }
  graph.validate();
  graph_ = frozen(options.optimize ? graph::passes::optimize_for_inference(graph) : std::move(graph));
  quantizes_ = quantizes_floats(graph_);
}

std::vector<Tensor> InferenceModel::checked_inputs(const std::vector<Tensor>& inputs) const {
  if (inputs.size() != graph_.inputs.size()) {
    throw std::invalid_argument("InferenceModel: the model takes " + std::to_string(graph_.inputs.size()) +
                                " inputs, got " + std::to_string(inputs.size()));
  }
  std::vector<Tensor> dense;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const graph::Value& want = graph_.values[graph_.inputs[i]];
    const Tensor& x = inputs[i];
    // A batch of zero examples has nothing to run, whether the batch is symbolic or fixed.
    if (!graph::accepts(want, x) || (!want.shape.empty() && x.shape()[0] == 0)) {
      throw std::invalid_argument("InferenceModel: input '" + want.name + "' expects " + graph::value_type(want) +
                                  " (the traced graph), got " + (x.defined() ? x.describe() : "an undefined tensor"));
    }
    dense.push_back(x.is_contiguous() && x.offset() == 0 ? x : x.clone_detached());
  }
  return dense;
}

std::shared_ptr<const Plan> InferenceModel::plan_for(const std::vector<Shape>& shapes) const {
  std::lock_guard<std::mutex> lock(plans_mu_);
  auto it = plans_.find(shapes);
  if (it != plans_.end()) {
    if (recent_.front() != shapes) {
      recent_.remove(shapes);
      recent_.push_front(shapes);
    }
    return it->second;
  }
  auto plan = std::make_shared<const Plan>(graph_, shapes, weights_, Plan::Options{.compute = options_.dtype});
  plans_[shapes] = plan;
  recent_.push_front(shapes);
  while (static_cast<int>(recent_.size()) > std::max(1, options_.max_plans)) {
    plans_.erase(recent_.back());
    recent_.pop_back();
  }
  return plan;
}

std::vector<Tensor> InferenceModel::run(const std::vector<Tensor>& inputs) const {
  std::vector<Tensor> dense = checked_inputs(inputs);
  bool all_finite = true;
  for (const Tensor& x : dense) all_finite = all_finite && finite(x);
  if (!all_finite) return quantizes_ ? run_with_nan_rows(dense) : graph_.run(dense);
  std::vector<Shape> shapes;
  for (const Tensor& x : dense) shapes.push_back(x.shape());
  return plan_for(shapes)->run(dense);
}

std::vector<Tensor> InferenceModel::run_with_nan_rows(const std::vector<Tensor>& dense) const {
  // The eager ops define the numbers (infinity saturates, as in ONNX QuantizeLinear); NaN,
  // which quantization maps to the zero point, is put back afterwards: every float output row
  // of a batch row whose input held a NaN becomes NaN, as the f32 model would give.
  const int64_t batch = dense.empty() || dense[0].ndim() == 0 ? 0 : dense[0].shape()[0];
  std::vector<bool> rows = nan_rows(dense, batch);
  bool any = false;
  for (bool r : rows) any = any || r;
  std::vector<Tensor> out = graph_.run(dense);
  if (!any) return out;
  for (Tensor& y : out) {
    if (!is_float(y.dtype())) continue;  // integer outputs (argmax) have no NaN to give
    y = y.clone_detached();
    if (y.ndim() == 0 || y.shape()[0] != batch) {
      y.fill(NAN);  // not per row: some bad row reached all of it
      continue;
    }
    Shape row_shape(y.shape().begin() + 1, y.shape().end());
    Strides row_strides(y.strides().begin() + 1, y.strides().end());
    for (int64_t r = 0; r < batch; ++r) {
      if (rows[static_cast<size_t>(r)]) y.alias(row_shape, row_strides, y.offset() + r * y.strides()[0]).fill(NAN);
    }
  }
  return out;
}

Tensor InferenceModel::run(const Tensor& input) const {
  std::vector<Tensor> out = run(std::vector<Tensor>{input});
  if (out.size() != 1) throw std::invalid_argument("InferenceModel::run: the model has several outputs; pass a vector");
  return out[0];
}

std::vector<Tensor> InferenceModel::call(const std::vector<Tensor>& inputs, bool training) {
  if (training) throw std::invalid_argument("InferenceModel: a traced model is frozen; it cannot run in training mode");
  return run(inputs);
}

std::string InferenceModel::describe_plan(const std::vector<Shape>& input_shapes) const {
  return plan_for(input_shapes)->describe();
}

int InferenceModel::fallback_steps(const std::vector<Shape>& input_shapes) const {
  return plan_for(input_shapes)->fallback_steps();
}

std::unique_ptr<InferenceModel> trace(nn::Model& model, const std::vector<Tensor>& samples, const TraceOptions& options) {
  if (options.accelerator != "kiln") {
    throw std::invalid_argument("trace: unknown accelerator '" + options.accelerator +
                                "' (Kiln runs 'kiln'; for other runtimes use export_onnx)");
  }
  auto out = std::make_unique<InferenceModel>(graph::trace(model, samples), InferenceOptions{.dtype = options.dtype},
                                              model.name() + "_inference");
  if (model.compiled()) out->compile(model.optimizer(), model.loss(), model.metric_names());
  return out;
}

std::unique_ptr<InferenceModel> trace(nn::Model& model, const Tensor& sample, const TraceOptions& options) {
  return trace(model, std::vector<Tensor>{sample}, options);
}

}  // namespace kiln::runtime_export
