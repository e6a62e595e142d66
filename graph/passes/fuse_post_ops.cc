#include "graph/passes/fuse_post_ops.h"

#include "graph/passes/graph_edit.h"
#include "tensor/ops/fused.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::graph::passes {
namespace {

// The epilogue a single node applies to its input, or nullopt-like none when it is not one.
bool activation_of(const graph::Node& n, Epilogue* out) {
  using K = ops::OpKind;
  if (n.call.is(K::relu)) {
    if (ops::parse_attrs_of<K::relu>(n.call).alpha != 0.f) return false;  // leaky relu stays a node
    *out = Epilogue::relu;
    return true;
  }
  for (Epilogue e : all_epilogues()) {
    if (e != Epilogue::none && e != Epilogue::relu && n.call.is(*ops::op_kind_from_name(epilogue_name(e)))) {
      *out = e;
      return true;
    }
  }
  return false;
}

bool is_add(const graph::Node& n) { return n.call.is(ops::OpKind::add) || n.call.is(ops::OpKind::add_relu); }

}  // namespace

graph::Graph fuse_post_ops(const graph::Graph& in) {
  graph::Graph g = in;
  std::vector<int> uses = use_counts(g);
  std::vector<bool> erase(g.nodes.size(), false);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    if (erase[k]) continue;
    const graph::Node& p = g.nodes[k];
    const bool conv = p.call.is(ops::OpKind::conv2d);
    if ((!conv && !p.call.is(ops::OpKind::linear)) || p.outputs.size() != 1 || !constant_tensor(g, p.inputs[1])) continue;
    Epilogue act = ops::epilogue_of(conv ? ops::parse_attrs_of<ops::OpKind::conv2d>(p.call).activation
                                         : ops::parse_attrs_of<ops::OpKind::linear>(p.call).activation);
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
      if (c >= 0 && !erase[c] && is_add(g.nodes[c])) {
        const graph::Node& add = g.nodes[c];
        int other = add.inputs[0] == current ? add.inputs[1] : add.inputs[0];
        const graph::Value& cur = g.values[current];
        if (other != current && g.values[other].shape == cur.shape && g.values[other].dtype == cur.dtype &&
            g.values[add.outputs[0]].shape == cur.shape) {
          residual = other;
          if (add.call.is(ops::OpKind::add_relu)) act = Epilogue::relu;
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
    if (conv) {
      Conv2dAttrs geometry = ops::parse_attrs_of<ops::OpKind::conv2d>(p.call);
      geometry.activation = FusedActivation::none;
      fused.call = fused_conv2d_attrs(geometry, act);
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
  return validated_result("fuse_post_ops", std::move(g));
}

}  // namespace kiln::graph::passes
