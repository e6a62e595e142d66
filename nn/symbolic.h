#pragma once
#include <memory>
#include <optional>
#include <vector>

#include "nn/layer.h"
#include "tensor/tensor.h"

namespace kiln::nn {

// A placeholder in a functional graph (a Keras "KerasTensor"): Input() creates one, calling a
// layer on symbolic tensors creates a node and returns its output.
// A layer with several outputs (LSTM(return_state=true)) makes one node; each of its
// SymbolicTensors names the node and which output it is (Keras's tensor index).
class SymbolicTensor {
 public:
  struct Output {
    Shape shape;  // without the batch dimension
    DType dtype = DType::f32;
    // The shape (without the batch dimension) of the mask this value carries (nn/mask.h),
    // when the layer that made it gives one: Embedding(mask_zero), Masking, and layers that
    // pass a mask on. Known from the probe call that builds the layer.
    std::optional<Shape> mask_shape;
  };
  struct Node {
    Layer layer;                          // undefined for an Input
    std::vector<SymbolicTensor> inputs;
    std::vector<Output> outputs;          // one for an Input
    // Releases a long chain of nodes (a deep model from a file) without recursing once per node.
    ~Node();
  };

  static SymbolicTensor input(const Shape& shape, DType dtype);
  // Under ScopedBuildLimits (a model being loaded), the layer's compute_output_shape() and
  // compute_cost() are checked against the limits before the probe runs.
  // apply() refuses a layer with several outputs (naming Layer::outputs); apply_all() returns
  // every output of the call.
  static SymbolicTensor apply(const Layer& layer, const std::vector<SymbolicTensor>& inputs);
  static std::vector<SymbolicTensor> apply_all(const Layer& layer, const std::vector<SymbolicTensor>& inputs);

  const Shape& shape() const { return spec().shape; }
  DType dtype() const { return spec().dtype; }
  // Whether a mask flows with this value (Keras's KerasTensor._keras_mask is not None).
  bool has_mask() const { return spec().mask_shape.has_value(); }
  const std::shared_ptr<Node>& node() const { return node_; }
  // Which of its node's outputs this is (0 but for layers with several).
  size_t output_index() const { return output_index_; }
  const Output& spec() const { return node_->outputs[output_index_]; }

 private:
  std::shared_ptr<Node> node_;
  size_t output_index_ = 0;
};

// keras.Input: shape excludes the batch dimension. Images may come as u8 (see Rescaling).
SymbolicTensor Input(const Shape& shape, DType dtype = DType::f32);

}  // namespace kiln::nn
