#include "nn/symbolic.h"

#include <stdexcept>

#include "autograd/gradient_tape.h"

namespace kiln::nn {

SymbolicTensor::Node::~Node() {
  std::vector<std::shared_ptr<Node>> pending;
  for (SymbolicTensor& in : inputs) pending.push_back(std::move(in.node_));
  inputs.clear();
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    // The last owner takes the node's inputs before it goes, so its destructor has none.
    if (n && n.use_count() == 1) {
      for (SymbolicTensor& in : n->inputs) pending.push_back(std::move(in.node_));
      n->inputs.clear();
    }
  }
}

SymbolicTensor SymbolicTensor::input(const Shape& shape, DType dtype) {
  check_shape_valid(shape, "Input");
  SymbolicTensor t;
  t.node_ = std::make_shared<Node>();
  t.node_->outputs.push_back({shape, dtype, std::nullopt});
  return t;
}

// The layer is built and its output shape found by running it once on a batch of one zero
// example, as Keras builds layers when they are called on symbolic inputs.
SymbolicTensor SymbolicTensor::apply(const Layer& layer, const std::vector<SymbolicTensor>& inputs) {
  if (layer.defined() && layer->num_outputs() != 1) {
    throw std::invalid_argument("layer '" + layer->name() + "' (" + layer->class_name() + ") has " +
                                std::to_string(layer->num_outputs()) +
                                " outputs: call it with Layer::outputs(), which returns them all");
  }
  return apply_all(layer, inputs)[0];
}

std::vector<SymbolicTensor> SymbolicTensor::apply_all(const Layer& layer, const std::vector<SymbolicTensor>& inputs) {
  if (inputs.empty()) throw std::invalid_argument("layer '" + layer->name() + "' called on no inputs");
  std::vector<Shape> shapes;
  for (const SymbolicTensor& in : inputs) {
    if (!in.node_) throw std::invalid_argument("layer '" + layer->name() + "' called on an empty symbolic tensor");
    Shape s{1};
    s.insert(s.end(), in.shape().begin(), in.shape().end());
    shapes.push_back(s);
  }
  ScopedBuildLimits* limits = ScopedBuildLimits::current();
  if (limits) {
    if (std::optional<Shape> out = layer->compute_output_shape(shapes)) {
      limits->check_activation(*out, DType::f32, layer->name());
    }
    limits->take_compute(layer->compute_cost(shapes), layer->name());
    for (size_t i = 0; i < inputs.size(); ++i) limits->take_activation(shapes[i], inputs[i].dtype(), layer->name());
  }
  std::vector<Tensor> probes, probe_masks;
  for (size_t i = 0; i < inputs.size(); ++i) {
    probes.push_back(Tensor::zeros(shapes[i], inputs[i].dtype()));
    // Probe masks keep every step, so that a masked mean over the probe is a number.
    if (const std::optional<Shape>& ms = inputs[i].spec().mask_shape) {
      Shape s{1};
      s.insert(s.end(), ms->begin(), ms->end());
      probe_masks.push_back(Tensor::ones(s, DType::f32));
    } else {
      probe_masks.push_back(Tensor());
    }
  }
  std::vector<MaskedTensor> results = layer.impl().invoke_outputs(probes, probe_masks, /*training=*/false);
  auto node = std::make_shared<Node>();
  node->layer = layer;
  node->inputs = inputs;
  for (const MaskedTensor& result : results) {
    const Tensor& out = result.value;
    if (limits) limits->take_activation(out.shape(), out.dtype(), layer->name());
    Output o{Shape(out.shape().begin() + 1, out.shape().end()), out.dtype(), std::nullopt};
    if (result.mask.defined()) o.mask_shape = Shape(result.mask.shape().begin() + 1, result.mask.shape().end());
    node->outputs.push_back(std::move(o));
  }
  std::vector<SymbolicTensor> ts(results.size());
  for (size_t k = 0; k < ts.size(); ++k) {
    ts[k].node_ = node;
    ts[k].output_index_ = k;
  }
  return ts;
}

SymbolicTensor Input(const Shape& shape, DType dtype) { return SymbolicTensor::input(shape, dtype); }

}  // namespace kiln::nn
