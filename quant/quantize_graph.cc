#include "quant/quantize_graph.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "graph/passes/dead_code.h"
#include "quant/int8_support.h"
#include "quant/weights.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/quantized.h"

namespace kiln::quant {
namespace {

Int8Role role_of(const graph::Node& n) { return int8_role(n.call.kind()); }
bool int8_passthrough(const graph::Node& n) { return role_of(n) == Int8Role::passthrough; }

// A passthrough node's call on int8 data: a constant pad writes its value quantized with the
// data's scale (zero point 0), so zero padding stays zero.
ops::Attrs int8_call(const ops::Attrs& call, const ActivationQuant& q) {
  if (!call.is(ops::OpKind::pad)) return call;
  PadAttrs p = ops::parse_attrs_of<ops::OpKind::pad>(call);
  const double lo = q.dtype == DType::u8 ? 0 : -128, hi = q.dtype == DType::u8 ? 255 : 127;
  p.value = std::clamp(std::nearbyint(p.value / q.scale), lo, hi);
  return to_attrs(p);
}

bool is_quantizable(const graph::Graph& g, const graph::Node& n) {
  if (role_of(n) != Int8Role::conv && role_of(n) != Int8Role::dense) return false;
  if (n.outputs.size() != 1 || g.values[n.inputs[0]].dtype != DType::f32) return false;
  const graph::Constant* w = g.constant_for(n.inputs[1]);
  if (!w || w->tensor.dtype() != DType::f32) return false;
  if (n.inputs.size() > 2 && !g.constant_for(n.inputs[2])) return false;
  return true;
}

// The epilogue of a conv or dense node, and a conv's geometry.
Epilogue epilogue_of(const graph::Node& n) {
  using K = ops::OpKind;
  switch (n.call.kind()) {
    case K::conv2d: return ops::epilogue_of(ops::parse_attrs_of<K::conv2d>(n.call).activation);
    case K::linear: return ops::epilogue_of(ops::parse_attrs_of<K::linear>(n.call).activation);
    case K::fused_conv2d: return ops::parse_attrs_of<K::fused_conv2d>(n.call).activation;
    case K::fused_linear: return ops::parse_attrs_of<K::fused_linear>(n.call).activation;
    default: throw std::logic_error("quantize_graph: " + n.call.op() + " is not a conv or dense");
  }
}
Conv2dAttrs conv_geometry_of(const graph::Node& n) {
  using K = ops::OpKind;
  if (n.call.is(K::fused_conv2d)) return ops::parse_attrs_of<K::fused_conv2d>(n.call).conv;
  Conv2dAttrs conv = ops::parse_attrs_of<K::conv2d>(n.call);
  conv.activation = FusedActivation::none;
  return conv;
}

}  // namespace

std::vector<int> quantizable_nodes(const graph::Graph& g) {
  std::vector<int> out;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    if (is_quantizable(g, g.nodes[k])) out.push_back(static_cast<int>(k));
  }
  return out;
}

graph::Graph quantize_graph(const graph::Graph& in, const std::map<int, ActivationQuant>& activations,
                            const QuantizeGraphOptions& options) {
  for (const auto& [v, q] : activations) {
    if (v < 0 || v >= static_cast<int>(in.values.size())) {
      throw std::invalid_argument("quantize_graph: activation parameters for value " + std::to_string(v) + " of " +
                                  std::to_string(in.values.size()));
    }
    const std::string what = "quantize_graph: value '" + in.values[v].name + "'";
    check_quant_scale(q.scale, what + " scale");
    check_zero_point(0, q.dtype, what + " zero point");
  }
  graph::Graph g = in;
  std::vector<graph::Node> nodes;
  std::map<int, std::pair<int, ActivationQuant>> int8_of;  // f32 value -> its int8 twin

  auto known = [&](int v) { return activations.count(v) > 0; };
  auto new_value = [&](int like, DType dtype, const std::string& suffix) {
    graph::Value v = g.values[like];
    v.name += suffix;
    v.dtype = dtype;
    g.values.push_back(v);
    return static_cast<int>(g.values.size()) - 1;
  };
  auto add_literal = [&](const std::string& name, const Tensor& t) {
    g.values.push_back({name, t.shape(), t.dtype()});
    int id = static_cast<int>(g.values.size()) - 1;
    g.constants.push_back({id, false, t});
    return id;
  };
  // The int8 twin of an f32 value, quantizing it here when no int8 layer produced it.
  auto int8 = [&](int v) {
    auto it = int8_of.find(v);
    if (it != int8_of.end()) return it->second;
    const ActivationQuant& q = activations.at(v);
    int v8 = new_value(v, q.dtype, "/q");
    nodes.push_back({ops::Attrs(ops::OpKind::quantize_linear)
                         .set("scale", q.scale)
                         .set("zero_point", 0)
                         .set("dtype", dtype_name(q.dtype)),
                     {v},
                     {v8}});
    return int8_of[v] = {v8, q};
  };
  auto dequantize = [&](int v8, const ActivationQuant& q, int v) {
    nodes.push_back({ops::Attrs(ops::OpKind::dequantize_linear).set("scale", q.scale).set("zero_point", 0), {v8}, {v}});
  };

  std::vector<bool> quantized(g.nodes.size(), false);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const graph::Node& n = g.nodes[k];
    bool ranges = known(n.inputs[0]) && known(n.outputs[0]) && (n.inputs.size() < 4 || known(n.inputs[3]));
    quantized[k] = is_quantizable(g, n) && !options.keep_float.count(static_cast<int>(k)) && ranges;
  }
  // Whether some reader keeps the value in int8 (an int8 layer or an int8 pool/reshape).
  auto int8_reader = [&](int v) {
    for (size_t k = 0; k < g.nodes.size(); ++k) {
      const graph::Node& n = g.nodes[k];
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        if (n.inputs[i] != v) continue;
        if (quantized[k] && (i == 0 || i == 3)) return true;
        if (int8_passthrough(n) && i == 0 && !options.keep_float.count(static_cast<int>(k))) return true;
      }
    }
    return false;
  };

  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const graph::Node n = g.nodes[k];
    if (quantized[k]) {
      auto [x8, xq] = int8(n.inputs[0]);
      const Tensor& w = g.constant_for(n.inputs[1])->tensor;
      std::vector<float> scales = weight_scales(w, -1);  // per output channel: the last axis
      Tensor w8 = quantize_weights(w, -1, scales);
      const std::string wname = g.values[n.inputs[1]].name;
      std::vector<int> inputs{x8, add_literal(wname + "/s8", w8)};
      QuantizedEpilogue q{.x_scale = xq.scale, .w_scales = scales};
      q.activation = epilogue_of(n);
      if (n.inputs.size() > 2) inputs.push_back(n.inputs[2]);  // a residual always comes after a bias
      if (n.inputs.size() > 3) {
        auto [r8, rq] = int8(n.inputs[3]);
        inputs.push_back(r8);
        q.residual_scale = rq.scale;
      }
      const int y = n.outputs[0];
      const bool keep_int8 = int8_reader(y);
      int out = y;
      if (keep_int8) {
        const ActivationQuant& yq = activations.at(y);
        q.out_dtype = yq.dtype;
        q.out_scale = yq.scale;
        out = new_value(y, yq.dtype, "/q");
      }
      // w8, not w: add_literal above may have moved the constants w refers into.
      check_quantized_epilogue(q, w8.shape().empty() ? 0 : w8.shape().back(),
                               "quantize_graph: node " + std::to_string(k) + " (" + n.call.op() + ")");
      ops::Attrs attrs;
      if (role_of(n) == Int8Role::conv) {
        attrs = qconv2d_attrs(conv_geometry_of(n), q);
      } else {
        attrs = qlinear_attrs(q);
      }
      nodes.push_back({attrs, inputs, {out}});
      if (keep_int8) {
        int8_of[y] = {out, {q.out_dtype, q.out_scale}};
        dequantize(out, {q.out_dtype, q.out_scale}, y);  // for float readers; dropped when unused
      }
      continue;
    }
    auto twin = int8_of.find(n.inputs.empty() ? -1 : n.inputs[0]);
    if (int8_passthrough(n) && twin != int8_of.end() && !options.keep_float.count(static_cast<int>(k))) {
      auto [x8, xq] = twin->second;
      int out8 = new_value(n.outputs[0], xq.dtype, "/q");
      nodes.push_back({int8_call(n.call, xq), {x8}, {out8}});
      int8_of[n.outputs[0]] = {out8, xq};
      dequantize(out8, xq, n.outputs[0]);
      continue;
    }
    nodes.push_back(n);
  }
  g.nodes = std::move(nodes);
  graph::Graph out = graph::eliminate_dead_code(g);
  out.validate();
  return out;
}

}  // namespace kiln::quant
