#include "nn/symbolic.h"

#include <stdexcept>

#include "autograd/gradient_tape.h"

namespace kiln::nn {

SymbolicTensor SymbolicTensor::input(const Shape& shape, DType dtype) {
  check_shape_valid(shape, "Input");
  SymbolicTensor t;
  t.node_ = std::make_shared<Node>();
  t.node_->shape = shape;
  t.node_->dtype = dtype;
  return t;
}

// The layer is built and its output shape found by running it once on a batch of one zero
// example, as Keras builds layers when they are called on symbolic inputs.
SymbolicTensor SymbolicTensor::apply(const Layer& layer, const std::vector<SymbolicTensor>& inputs) {
  if (inputs.empty()) throw std::invalid_argument("layer '" + layer->name() + "' called on no inputs");
  std::vector<Tensor> probes;
  for (const SymbolicTensor& in : inputs) {
    if (!in.node_) throw std::invalid_argument("layer '" + layer->name() + "' called on an empty symbolic tensor");
    Shape s{1};
    s.insert(s.end(), in.shape().begin(), in.shape().end());
    probes.push_back(Tensor::zeros(s, in.dtype()));
  }
  Tensor out = layer.impl().invoke(probes, /*training=*/false);
  SymbolicTensor t;
  t.node_ = std::make_shared<Node>();
  t.node_->layer = layer;
  t.node_->inputs = inputs;
  t.node_->shape = Shape(out.shape().begin() + 1, out.shape().end());
  t.node_->dtype = out.dtype();
  return t;
}

SymbolicTensor Input(const Shape& shape, DType dtype) { return SymbolicTensor::input(shape, dtype); }

}  // namespace kiln::nn
