#pragma once
#include <memory>
#include <vector>

#include "nn/layer.h"
#include "tensor/tensor.h"

namespace kiln::nn {

// A placeholder in a functional graph (a Keras "KerasTensor"): Input() creates one, calling a
// layer on symbolic tensors creates a node and returns its output.
class SymbolicTensor {
 public:
  struct Node {
    Layer layer;                          // undefined for an Input
    std::vector<SymbolicTensor> inputs;
    Shape shape;                          // without the batch dimension
    DType dtype = DType::f32;
    // Releases a long chain of nodes (a deep model from a file) without recursing once per node.
    ~Node();
  };

  static SymbolicTensor input(const Shape& shape, DType dtype);
  // Under ScopedBuildLimits (a model being loaded), the layer's compute_output_shape() and
  // compute_cost() are checked against the limits before the probe runs.
  static SymbolicTensor apply(const Layer& layer, const std::vector<SymbolicTensor>& inputs);

  const Shape& shape() const { return node_->shape; }
  DType dtype() const { return node_->dtype; }
  const std::shared_ptr<Node>& node() const { return node_; }

 private:
  std::shared_ptr<Node> node_;
};

// keras.Input: shape excludes the batch dimension. Images may come as u8 (see Rescaling).
SymbolicTensor Input(const Shape& shape, DType dtype = DType::f32);

}  // namespace kiln::nn
