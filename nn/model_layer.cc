#include "nn/model_layer.h"

#include <stdexcept>

#include "nn/layer_graph.h"
#include "nn/model.h"
#include "tensor/ops/eltwise.h"

namespace kiln::nn {

ModelLayer::ModelLayer(std::shared_ptr<Model> model) : LayerImpl("model", model->name()), model_(std::move(model)) {}

Tensor ModelLayer::call(const std::vector<Tensor>& inputs, bool training) {
  std::vector<Tensor> outs = model_->call(inputs, training);
  if (outs.size() != 1) {
    throw std::invalid_argument("model '" + name() + "' has " + std::to_string(outs.size()) +
                                " outputs; a model used as a layer must have one");
  }
  if (!inputs.empty()) model_->note_input(inputs[0]);
  return outs[0];
}

MaskedTensor ModelLayer::call_and_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& masks,
                                       bool training, bool with_relu) {
  std::vector<MaskedTensor> in;
  for (size_t i = 0; i < inputs.size(); ++i) in.push_back({inputs[i], i < masks.size() ? masks[i] : Tensor()});
  std::vector<MaskedTensor> outs = model_->call_masked(in, training);
  if (outs.size() != 1) {
    throw std::invalid_argument("model '" + name() + "' has " + std::to_string(outs.size()) +
                                " outputs; a model used as a layer must have one");
  }
  if (!inputs.empty()) model_->note_input(inputs[0]);
  if (with_relu) outs[0].value = relu(outs[0].value);
  return outs[0];
}

int ModelLayer::num_inputs() const {
  if (model_->is_functional()) return static_cast<int>(model_->graph().inputs.size());
  return model_->class_name() == "Sequential" ? 1 : -1;
}

std::string ModelLayer::class_name() const { return model_->class_name(); }

Config ModelLayer::config() const {
  Config c = model_->config();
  // A subclassed model's config is what its factory takes; the built-in ones carry the flag.
  if (model_->is_functional() || model_->class_name() == "Sequential") c.set("trainable", trainable);
  return c;
}

std::optional<Shape> ModelLayer::compute_output_shape(const std::vector<Shape>& in) const {
  if (!model_->is_functional()) return std::nullopt;
  const LayerGraph& g = model_->graph();
  if (in.size() != g.inputs.size() || g.outputs.size() != 1 || g.outputs[0].output != 0) return std::nullopt;
  for (size_t i = 0; i < in.size(); ++i) {
    const Shape& want = g.nodes[g.inputs[i]].shape;
    if (in[i].size() != want.size() + 1 || !std::equal(want.begin(), want.end(), in[i].begin() + 1)) return std::nullopt;
  }
  Shape out{in[0][0]};
  const Shape& o = g.nodes[g.outputs[0].node].shape;
  out.insert(out.end(), o.begin(), o.end());
  return out;
}

double ModelLayer::compute_cost(const std::vector<Shape>& in) const {
  std::optional<std::pair<Shape, DType>> built = model_->built_input();
  if (in.empty() || in[0].empty() || !built) return LayerImpl::compute_cost(in);
  const LayerGraph* g = nullptr;
  try {
    g = &model_->graph();
  } catch (const std::logic_error&) {
    return LayerImpl::compute_cost(in);  // a subclassed model: no graph to sum over
  }
  double total = 0;
  for (const LayerGraph::Node& node : g->nodes) {
    if (!node.layer.defined()) continue;
    std::vector<Shape> shapes;
    for (const LayerGraph::Ref& r : node.inbound) {
      // Output 0's shape stands for the others (a recurrent layer's states are smaller).
      Shape s{in[0][0]};
      s.insert(s.end(), g->nodes[r.node].shape.begin(), g->nodes[r.node].shape.end());
      shapes.push_back(s);
    }
    total += node.layer->compute_cost(shapes);
  }
  return total;
}

int ModelLayer::set_packed_weights(bool packed) {
  int n = 0;
  for (const Layer& l : model_->layers()) n += l->set_packed_weights(packed);
  return n;
}

void ModelLayer::set_policy(const Policy& policy) {
  LayerImpl::set_policy(policy);
  model_->set_policy(policy.name);
}

std::vector<Variable> ModelLayer::variables() const { return model_->variables(); }

std::vector<Variable> ModelLayer::trainable_variables() const {
  return trainable ? model_->trainable_variables() : std::vector<Variable>{};
}

std::vector<Variable> ModelLayer::non_trainable_variables() const {
  return trainable ? model_->non_trainable_variables() : model_->variables();
}

}  // namespace kiln::nn
