#include "graph/passes/fold_zero_padding.h"

#include <optional>

#include "graph/passes/graph_edit.h"
#include "graph/passes/dead_code.h"
#include "tensor/ops/fused.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/pad.h"

namespace kiln::graph::passes {
namespace {

using K = ops::OpKind;

bool is_zero_literal(const graph::Graph& g, int value) {
  const graph::Constant* c = g.constant_for(value);
  if (!c || c->is_variable || !c->tensor.defined()) return false;
  if (c->tensor.dtype() != DType::f32 && c->tensor.dtype() != DType::bf16) return false;
  for (float v : c->tensor.to_vector()) {
    if (v != 0.f) return false;
  }
  return true;
}

// Zero padding of H and/or W around one value, as {top, left, bottom, right}, written either
// as a pad node (constant 0, nothing on N or C, no cropping) or as a concat along H (axis 1) or
// W (axis 2) of rank-4 values holding one value between zero literals (what ZeroPadding2D traced
// to before the pad op, still in saved graphs).
struct ZeroPad {
  bool axes[3] = {false, false, false};  // which spatial axes (1: H, 2: W) it pads
  int source = -1;
  Pads2d pads{0, 0, 0, 0};
};
std::optional<ZeroPad> zero_pad_node(const graph::Node& n) {
  const PadAttrs a = ops::parse_attrs_of<K::pad>(n.call);
  if (a.mode != PadMode::constant || a.value != 0 || a.before.size() != 4) return std::nullopt;
  if (a.before[0] || a.after[0] || a.before[3] || a.after[3]) return std::nullopt;
  ZeroPad p;
  p.source = n.inputs[0];
  for (int axis = 1; axis <= 2; ++axis) {
    if (a.before[axis] < 0 || a.after[axis] < 0) return std::nullopt;
    p.axes[axis] = a.before[axis] > 0 || a.after[axis] > 0;
    p.pads[axis - 1] = a.before[axis];
    p.pads[axis + 1] = a.after[axis];
  }
  return p;
}
std::optional<ZeroPad> zero_pad_of(const graph::Graph& g, const graph::Node& n) {
  if (n.outputs.size() != 1) return std::nullopt;
  if (n.call.is(K::pad)) return zero_pad_node(n);
  if (!n.call.is(K::concat)) return std::nullopt;
  const Shape& out = g.values[n.outputs[0]].shape;
  if (out.size() != 4) return std::nullopt;
  int axis = ops::parse_attrs_of<K::concat>(n.call).axis;
  if (axis < 0) axis += 4;
  if (axis != 1 && axis != 2) return std::nullopt;
  ZeroPad p;
  p.axes[axis] = true;
  for (int v : n.inputs) {
    const int64_t size = g.values[v].shape[axis];
    if (size < 0) return std::nullopt;
    if (is_zero_literal(g, v)) {
      p.pads[p.source < 0 ? axis - 1 : axis + 1] += size;
    } else if (p.source < 0) {
      p.source = v;
    } else {
      return std::nullopt;  // two real values: not padding
    }
  }
  if (p.source < 0) return std::nullopt;
  return p;
}

// Whether every element of `value` is >= 0 (or NaN) by what computes it.
bool non_negative(const graph::Graph& g, const std::vector<int>& producer, int value) {
  const int k = producer[value];
  if (k < 0) return false;
  const graph::Node& n = g.nodes[k];
  switch (n.call.kind()) {
    case K::relu:
      return ops::parse_attrs_of<K::relu>(n.call).alpha == 0.f;
    case K::add_relu:
    case K::sigmoid:
    case K::abs:
    case K::square:
    case K::exp:
    case K::softplus:
    case K::sqrt:
      return true;
    case K::conv2d:
      return ops::parse_attrs_of<K::conv2d>(n.call).activation == FusedActivation::relu;
    case K::fused_conv2d:
      return ops::parse_attrs_of<K::fused_conv2d>(n.call).activation == Epilogue::relu;
    case K::fused_linear:
      return ops::parse_attrs_of<K::fused_linear>(n.call).activation == Epilogue::relu;
    case K::batch_norm_inference:
      return ops::parse_attrs_of<K::batch_norm_inference>(n.call).relu;
    default:
      return false;
  }
}

// The reader's padding as explicit pads {top, left, bottom, right} over `padded` (its input
// shape as it is now).
Pads2d current_pads(const Shape& padded, const std::array<int64_t, 2>& kernel, const std::array<int64_t, 2>& strides,
                    const std::array<int64_t, 2>& dilation, Padding padding, const Pads2d& pads, const char* op) {
  if (padding == Padding::explicit_pads) return pads;
  SpatialPlan h = plan_spatial(padded[1], kernel[0], strides[0], dilation[0], padding, op, shape_str(padded));
  SpatialPlan w = plan_spatial(padded[2], kernel[1], strides[1], dilation[1], padding, op, shape_str(padded));
  return {h.pad_before, w.pad_before, h.pad_after, w.pad_after};
}

}  // namespace

graph::Graph fold_zero_padding(const graph::Graph& in) {
  graph::Graph g = in;
  std::vector<int> uses = use_counts(g);
  std::vector<int> producer(g.values.size(), -1);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    for (int v : g.nodes[k].outputs) producer[v] = static_cast<int>(k);
  }
  std::vector<bool> erase(g.nodes.size(), false);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    graph::Node& reader = g.nodes[k];
    const K kind = reader.call.kind();
    if (kind != K::conv2d && kind != K::fused_conv2d && kind != K::max_pool2d) continue;
    // Walk up through at most one padding node per spatial axis.
    Pads2d zero{0, 0, 0, 0};
    std::vector<int> concats;
    int source = reader.inputs[0];
    bool seen[3] = {false, false, false};
    while (producer[source] >= 0 && concats.size() < 2) {
      const int c = producer[source];
      std::optional<ZeroPad> p = zero_pad_of(g, g.nodes[c]);
      if (!p || (seen[1] && p->axes[1]) || (seen[2] && p->axes[2]) || erase[c] || uses[source] != 1) break;
      for (int axis = 1; axis <= 2; ++axis) seen[axis] = seen[axis] || p->axes[axis];
      for (int i = 0; i < 4; ++i) zero[i] += p->pads[i];
      concats.push_back(c);
      source = p->source;
    }
    if (concats.empty()) continue;
    const Shape padded = g.values[reader.inputs[0]].shape;
    if (padded.size() != 4 || padded[1] < 0 || padded[2] < 0) continue;
    Pads2d total{};
    if (kind == K::max_pool2d) {
      Pool2dAttrs a = ops::parse_attrs_of<K::max_pool2d>(reader.call);
      if (!non_negative(g, producer, source)) continue;
      const std::array<int64_t, 2> strides{a.strides[0] ? a.strides[0] : a.pool_size[0],
                                           a.strides[1] ? a.strides[1] : a.pool_size[1]};
      Pads2d now = current_pads(padded, a.pool_size, strides, {1, 1}, a.padding, a.pads, "max_pool2d");
      bool fits = true;
      for (int i = 0; i < 4; ++i) {
        total[i] = now[i] + zero[i];
        fits = fits && total[i] < a.pool_size[i % 2];
      }
      if (!fits) continue;
      a.padding = Padding::explicit_pads;
      a.pads = total;
      a.strides = strides;
      reader.call = to_attrs("max_pool2d", a);
    } else {
      ops::FusedConv2dAttrs fused;
      Conv2dAttrs a = kind == K::conv2d ? ops::parse_attrs_of<K::conv2d>(reader.call)
                                        : (fused = ops::parse_attrs_of<K::fused_conv2d>(reader.call)).conv;
      const Shape& w = g.values[reader.inputs[1]].shape;
      if (w.size() != 4) continue;
      Pads2d now = current_pads(padded, {w[0], w[1]}, a.strides, a.dilation, a.padding, a.pads, "conv2d");
      for (int i = 0; i < 4; ++i) total[i] = now[i] + zero[i];
      a.padding = Padding::explicit_pads;
      a.pads = total;
      reader.call = kind == K::conv2d ? to_attrs(a) : fused_conv2d_attrs(a, fused.activation);
    }
    reader.inputs[0] = source;
    for (int c : concats) erase[c] = true;
  }
  erase_nodes(g, erase);
  return validated_result("fold_zero_padding", graph::eliminate_dead_code(g));
}

}  // namespace kiln::graph::passes
