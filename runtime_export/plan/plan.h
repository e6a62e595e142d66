#pragma once
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph/graph.h"
#include "tensor/tensor.h"

namespace kiln::runtime_export {

// Weights reordered once into the layout a primitive asked for (oneDNN's blocked layouts for
// its fastest kernels), shared by every plan of one InferenceModel and by its threads.
class PackedWeights {
 public:
  // The constant `value` of the graph laid out as `want`, from `source` (its Kiln tensor) seen
  // through `source_desc`. Packs on first use; later calls return the cached bytes. `variant`
  // tells apart sources derived from one value that share a layout (cropped kernels).
  const Tensor& get(int value, const Tensor& source, const dnnl::memory::desc& source_desc,
                    const dnnl::memory::desc& want, const std::string& variant = "");

 private:
  std::mutex mu_;
  std::unordered_map<std::string, Tensor> packed_;
};

// One executable form of a Graph for one set of input shapes: oneDNN primitives created
// once, activations in the layouts those primitives chose (blocked for convolutions, reordered
// only where a plain layout is needed), buffers assigned by liveness so that values that are
// never alive together share memory. Running it takes a Workspace (the buffers); a Plan keeps
// a pool of them so that concurrent calls never share one and a steady state allocates nothing.
class Plan {
 public:
  struct Options {
    DType compute = DType::f32;  // f32 or bf16: the dtype of floating activations and weights
  };
  Plan(const graph::Graph& graph, const std::vector<Shape>& input_shapes, PackedWeights& weights,
       const Options& options);
  ~Plan();
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  // inputs are contiguous and match the shapes the plan was made for.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs) const;

  // "conv2d: 3 (1 fused), reorder: 2, ..." for tests and the README.
  std::string describe() const;
  // How many steps fell back to the eager ops (ops the runtime has no kernel for).
  int fallback_steps() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::runtime_export
