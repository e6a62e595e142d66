#pragma once
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "nn/model.h"
#include "runtime_export/plan/plan.h"

namespace kiln::runtime_export {

struct InferenceOptions {
  DType dtype = DType::f32;  // f32 or bf16: activations and weights (accumulation stays f32)
  bool optimize = true;      // run passes::optimize_for_inference first
  int max_plans = 16;        // plans kept for distinct input shapes (least recently used go)
};

// The "kiln" accelerator: a frozen, non-trainable model that runs a traced Graph with oneDNN
// directly: no tape, BatchNorm folded, bias/ReLU/GELU/residual add fused as post-ops, weights
// reordered once into the blocked layouts oneDNN's fastest kernels use, and activation buffers
// planned by liveness. It takes any batch size: a plan (primitives and buffers) is made for
// each new input shape, and a call with a shape seen before allocates nothing new.
// It is a Model, so predict(), evaluate() (after compile(), or with the compile state of the
// model it was traced from) and the Trainer's evaluate work as for the original.
// Safe to call from several threads at once (each call takes its own buffers).
// Inputs holding NaN or infinity run through the eager ops (Graph::run), so that they
// propagate exactly as in Model::predict; finite inputs take the fused path. In a quantized
// (int8) model, infinity saturates as quantization defines, and every float output row of a
// batch row whose input held a NaN comes out NaN (quantization alone would map NaN to the zero
// point), so NaN checks on predictions and losses see it as on the f32 model.
class InferenceModel : public nn::Model {
 public:
  explicit InferenceModel(graph::Graph graph, const InferenceOptions& options = {}, const std::string& name = "");

  // Checks the inputs against the graph (count, dtype, rank, every dimension but the batch)
  // and throws std::invalid_argument naming the input, what it expects and what it got.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs) const;
  Tensor run(const Tensor& input) const;

  std::vector<Tensor> call(const std::vector<Tensor>& inputs, bool training) override;
  std::vector<nn::Layer> layers() const override { return {}; }

  // The graph after the passes, as it runs.
  const graph::Graph& inference_graph() const { return graph_; }
  DType dtype() const { return options_.dtype; }
  // The steps the plan for these input shapes runs ("conv2d: 20 (20 fused), reorder: 1, ...").
  std::string describe_plan(const std::vector<Shape>& input_shapes) const;
  // How many steps of that plan run eager ops (ops with no kernel of the runtime's own).
  int fallback_steps(const std::vector<Shape>& input_shapes) const;

 private:
  std::shared_ptr<const Plan> plan_for(const std::vector<Shape>& shapes) const;
  std::vector<Tensor> checked_inputs(const std::vector<Tensor>& inputs) const;
  std::vector<Tensor> run_with_nan_rows(const std::vector<Tensor>& dense) const;

  graph::Graph graph_;
  InferenceOptions options_;
  bool quantizes_ = false;  // some node turns float data into u8/s8 (see run_with_nan_rows)
  mutable PackedWeights weights_;
  mutable std::mutex plans_mu_;
  mutable std::map<std::vector<Shape>, std::shared_ptr<const Plan>> plans_;
  mutable std::list<std::vector<Shape>> recent_;  // front: most recently used
};

struct TraceOptions {
  std::string accelerator = "kiln";  // the only one: Kiln's own runtime
  DType dtype = DType::f32;          // bf16: a bf16 inference model
};

// BigDL-Nano's trace(model, accelerator, input_sample): one inference forward of `model`
// on `samples` (dimension 0 is the batch, which stays free) becomes an InferenceModel. Its
// weights are a snapshot: training the model afterwards does not change it. When the model
// is compiled, its loss and metrics come along, so evaluate() works at once.
std::unique_ptr<InferenceModel> trace(nn::Model& model, const std::vector<Tensor>& samples,
                                      const TraceOptions& options = {});
std::unique_ptr<InferenceModel> trace(nn::Model& model, const Tensor& sample, const TraceOptions& options = {});

}  // namespace kiln::runtime_export
