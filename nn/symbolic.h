#pragma once
#include <memory>
#include <optional>
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
    // The shape (without the batch dimension) of the mask this value carries (nn/mask.h),
    // when the layer that made it gives one: Embedding(mask_zero), Masking, and layers that
    // pass a mask on. Known from the probe call that builds the layer.
    std::optional<Shape> mask_shape;
    // Releases a long chain of nodes (a deep model from a file) without recursing once per node.
    ~Node();
  };

  static SymbolicTensor input(const Shape& shape, DType dtype);
  // Under ScopedBuildLimits (a model being loaded), the layer's compute_output_shape() and
  // compute_cost() are checked against the limits before the probe runs.
  static SymbolicTensor apply(const Layer& layer, const std::vector<SymbolicTensor>& inputs);

  const Shape& shape() const { return node_->shape; }
  DType dtype() const { return node_->dtype; }
  // Whether a mask flows with this value (Keras's KerasTensor._keras_mask is not None).
  bool has_mask() const { return node_->mask_shape.has_value(); }
  const std::shared_ptr<Node>& node() const { return node_; }

 private:
  std::shared_ptr<Node> node_;
};

// keras.Input: shape excludes the batch dimension. Images may come as u8 (see Rescaling).
SymbolicTensor Input(const Shape& shape, DType dtype = DType::f32);

}  // namespace kiln::nn
