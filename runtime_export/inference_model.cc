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

}  // namespace

InferenceModel::InferenceModel(graph::Graph graph, const InferenceOptions& options, const std::string& name)
    : nn::Model(name.empty() ? "inference_model" : name), options_(options) {
  if (options.dtype != DType::f32 && options.dtype != DType::bf16) {
    throw std::invalid_argument(std::string("InferenceModel: dtype must be f32 or bf16, got ") + dtype_name(options.dtype));
  }
  graph.validate();
  graph_ = frozen(options.optimize ? graph::passes::optimize_for_inference(graph) : std::move(graph));
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
    // A batch of zero examples has nothing to run.
    if (!graph::accepts(want, x) || (!want.shape.empty() && want.shape[0] == graph::kBatch && x.shape()[0] == 0)) {
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
  if (!all_finite) return graph_.run(dense);
  std::vector<Shape> shapes;
  for (const Tensor& x : dense) shapes.push_back(x.shape());
  return plan_for(shapes)->run(dense);
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
