#include "graph/passes/fold_batchnorm.h"

#include <cmath>

#include "graph/passes/graph_edit.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::graph::passes {
namespace {

bool foldable_producer(const graph::Graph& g, const graph::Node& p) {
  using K = ops::OpKind;
  if (p.call.is(K::conv2d)) {
    if (ops::parse_attrs_of<K::conv2d>(p.call).activation != FusedActivation::none) return false;
  } else if (p.call.is(K::linear)) {
    if (ops::parse_attrs_of<K::linear>(p.call).activation != FusedActivation::none) return false;
  } else {
    return false;
  }
  if (p.outputs.size() != 1) return false;
  if (!constant_tensor(g, p.inputs[1])) return false;
  // Dense kernels [K, N] and conv kernels [KH, KW, C / groups, O] both end in the output channel.
  return p.inputs.size() < 3 || constant_tensor(g, p.inputs[2]);
}

std::vector<double> values_of(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

}  // namespace

graph::Graph fold_batchnorm(const graph::Graph& in) {
  graph::Graph g = in;
  std::vector<int> uses = use_counts(g);
  std::vector<int> producer(g.values.size(), -1);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    for (int o : g.nodes[k].outputs) producer[o] = static_cast<int>(k);
  }
  std::vector<bool> erase(g.nodes.size(), false);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const graph::Node bn = g.nodes[k];
    if (!bn.call.is(ops::OpKind::batch_norm_inference)) continue;
    const ops::BatchNormAttrs bn_attrs = ops::parse_attrs_of<ops::OpKind::batch_norm_inference>(bn.call);
    int pk = producer[bn.inputs[0]];
    if (pk < 0 || uses[bn.inputs[0]] != 1 || !foldable_producer(g, g.nodes[pk])) continue;
    const Tensor* params[4];
    bool constant_params = true;
    for (int j = 0; j < 4; ++j) {
      params[j] = constant_tensor(g, bn.inputs[1 + j]);
      constant_params = constant_params && params[j];
    }
    if (!constant_params) continue;
    graph::Node& p = g.nodes[pk];
    const Tensor& w = *constant_tensor(g, p.inputs[1]);
    const int64_t channels = w.shape().back();
    if (params[0]->numel() != channels) continue;
    std::vector<double> gamma = values_of(*params[0]), beta = values_of(*params[1]), mean = values_of(*params[2]),
                        var = values_of(*params[3]);
    std::vector<double> bias(channels, 0.0);
    if (p.inputs.size() > 2) bias = values_of(*constant_tensor(g, p.inputs[2]));
    const double eps = bn_attrs.epsilon;
    std::vector<double> scale(channels);
    std::vector<float> new_bias(channels);
    for (int64_t c = 0; c < channels; ++c) {
      scale[c] = gamma[c] / std::sqrt(var[c] + eps);
      new_bias[c] = static_cast<float>((bias[c] - mean[c]) * scale[c] + beta[c]);
    }
    std::vector<float> wv = w.to_vector();  // row-major, output channel last
    for (size_t i = 0; i < wv.size(); ++i) wv[i] = static_cast<float>(wv[i] * scale[i % channels]);
    const std::string wname = g.values[p.inputs[1]].name;  // a copy: add_literal grows values
    Tensor folded_w = Tensor::from_vector(wv, w.shape(), w.dtype());
    int w_value = add_literal(g, wname + "/bn_folded", folded_w);
    int b_value = add_literal(g, wname + "/bn_folded_bias", Tensor::from_vector(new_bias, {channels}));
    p.inputs.resize(2);
    p.inputs[1] = w_value;
    p.inputs.push_back(b_value);
    p.call.set("activation", bn_attrs.relu ? "relu" : "none");
    p.outputs = bn.outputs;  // the batch norm's output, read by what read it
    erase[k] = true;
  }
  erase_nodes(g, erase);
  return validated_result("fold_batchnorm", std::move(g));
}

}  // namespace kiln::graph::passes
