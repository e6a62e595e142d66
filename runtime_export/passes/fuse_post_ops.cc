#include "runtime_export/passes/fuse_post_ops.h"

#include "runtime_export/passes/graph_edit.h"
#include "tensor/ops/fused.h"

namespace kiln::runtime_export::passes {
namespace {

// The epilogue a single node applies to its input, or nullopt-like none when it is not one.
bool activation_of(const graph::Node& n, Epilogue* out) {
  const std::string& op = n.call.op();
  if (op == "relu") {
    if (n.call.get_float("alpha") != 0.0) return false;  // leaky relu stays a node
    *out = Epilogue::relu;
    return true;
  }
  if (op == "gelu_erf") *out = Epilogue::gelu_erf;
  else if (op == "gelu_tanh") *out = Epilogue::gelu_tanh;
  else return false;
  return true;
}

}  // namespace

graph::Graph fuse_post_ops(const graph::Graph& in) {
  graph::Graph g = in;
  std::vector<int> uses = use_counts(g);
  std::vector<bool> erase(g.nodes.size(), false);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    if (erase[k]) continue;
    const graph::Node& p = g.nodes[k];
    const std::string& op = p.call.op();
    if ((op != "conv2d" && op != "linear") || p.outputs.size() != 1 || !constant_tensor(g, p.inputs[1])) continue;
    Epilogue act = p.call.get_string("activation") == "relu" ? Epilogue::relu : Epilogue::none;
    int residual = -1;
    int last = static_cast<int>(k);
    int current = p.outputs[0];
    auto absorb = [&](int node) {
      erase[node] = true;
      last = node;
      current = g.nodes[node].outputs[0];
    };
    if (act == Epilogue::none) {
      int c = sole_consumer(g, uses, current);
      if (c >= 0 && !erase[c] && (g.nodes[c].call.op() == "add" || g.nodes[c].call.op() == "add_relu")) {
        const graph::Node& add = g.nodes[c];
        int other = add.inputs[0] == current ? add.inputs[1] : add.inputs[0];
        const graph::Value& cur = g.values[current];
        if (other != current && g.values[other].shape == cur.shape && g.values[other].dtype == cur.dtype &&
            g.values[add.outputs[0]].shape == cur.shape) {
          residual = other;
          if (add.call.op() == "add_relu") act = Epilogue::relu;
          absorb(c);
        }
      }
      if (act == Epilogue::none) {
        int a = sole_consumer(g, uses, current);
        Epilogue e;
        if (a >= 0 && !erase[a] && activation_of(g.nodes[a], &e)) {
          act = e;
          absorb(a);
        }
      }
    }
    if (last == static_cast<int>(k)) continue;  // nothing to fuse: the plain node stays
    graph::Node fused;
    if (op == "conv2d") {
      Conv2dAttrs conv = conv2d_options_from(p.call);
      conv.activation = FusedActivation::none;
      fused.call = fused_conv2d_attrs(conv, act);
    } else {
      fused.call = fused_linear_attrs(act);
    }
    fused.inputs = p.inputs;
    if (residual >= 0) {
      if (fused.inputs.size() < 3) {
        int64_t channels = g.values[p.outputs[0]].shape.back();
        DType bias_dtype = g.values[p.outputs[0]].dtype == DType::bf16 ? DType::f32 : g.values[p.outputs[0]].dtype;
        fused.inputs.push_back(add_literal(g, g.values[p.inputs[1]].name + "/zero_bias", Tensor::zeros({channels}, bias_dtype)));
      }
      fused.inputs.push_back(residual);
    }
    fused.outputs = {current};
    erase[k] = true;
    erase[last] = false;
    g.nodes[last] = fused;
  }
  erase_nodes(g, erase);
  return g;
}

}  // namespace kiln::runtime_export::passes
