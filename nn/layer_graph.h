#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/layer.h"
#include "nn/mask.h"
#include "nn/symbolic.h"
#include "tensor/tensor.h"

namespace kiln::nn {

// A model's layers as data: which layer is called on which tensors (Keras's functional graph
// of layer calls with inbound nodes). A functional Model holds one; a Sequential model is a
// chain of the same kind, so code that walks models treats both alike. A layer called twice
// (shared weights) appears at two nodes.
struct LayerGraph {
  // One output of a node: a layer with several outputs (LSTM(return_state=true)) is one node
  // whose readers name which output they take (Keras's [layer, node index, tensor index]).
  struct Ref {
    size_t node = 0;
    size_t output = 0;
    bool operator==(const Ref&) const = default;
  };
  struct Node {
    Layer layer;               // undefined for a model input
    std::vector<Ref> inbound;  // what this call reads, in argument order
    Shape shape;               // output 0's shape without the batch dimension
    DType dtype = DType::f32;  // output 0's dtype
    size_t num_outputs = 1;
  };
  std::vector<Node> nodes;     // topological: inputs first, then each node after those it reads
  std::vector<size_t> inputs;  // the model's inputs, in the order it takes them
  std::vector<Ref> outputs;

  bool is_input(size_t node) const { return !nodes[node].layer.defined(); }
  // Distinct layers in the order of their first call.
  std::vector<Layer> layers() const;

  // The calls between inputs and outputs, in the order a depth-first walk from the outputs
  // first reaches them. Throws std::invalid_argument (naming `model_name`) when an output
  // depends on an Input() that is not among `inputs`, or an input is not an Input().
  static LayerGraph from_symbolic(const std::vector<SymbolicTensor>& inputs, const std::vector<SymbolicTensor>& outputs,
                                  const std::string& model_name);
};

// How a model runs each node of its layer graph; graph passes (nn/passes/) decide it.
struct FusedPlan {
  enum class Step : uint8_t {
    input,          // a model input
    run,            // the layer's call()
    run_with_relu,  // the layer's call_with_relu(): a ReLU that read only this node was folded in
    forward_input,  // a folded ReLU: its producer already applied it, so pass its input on
  };
  std::vector<Step> steps;  // one per graph node

  // Every layer node runs as called.
  static FusedPlan plain(const LayerGraph& graph);
};

// Runs a graph: inputs in graph.inputs order (batch dimension first); returns its outputs.
// Masks flow along the edges as Keras's do: each node's output mask is its layer's
// compute_mask, and a node whose inputs carry masks runs call_with_mask.
std::vector<Tensor> run_layer_graph(const LayerGraph& graph, const FusedPlan& plan, const std::vector<Tensor>& inputs,
                                    bool training);
// The same with the inputs' masks (undefined where none) and the outputs' masks returned.
std::vector<MaskedTensor> run_layer_graph_masked(const LayerGraph& graph, const FusedPlan& plan,
                                                 const std::vector<MaskedTensor>& inputs, bool training);

}  // namespace kiln::nn
