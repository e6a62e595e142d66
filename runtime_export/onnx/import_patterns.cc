// The exporter's multi-node patterns (GELU, Mish, comparison + Cast, ArgMax + Cast, integer Clip + Cast)
// back to one Kiln op each.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "runtime_export/onnx/importer.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/shape_ops.h"

namespace kiln::runtime_export::onnx_io {

int Importer::gelu_erf(const onnx::NodeProto& n) {
  // Div(x, sqrt2) -> Erf -> Add(., 1) -> Mul(x, .) -> Mul(., 0.5), as the exporter writes it.
  if (n.op_type() != "Div" || n.input_size() != 2 || n.output_size() != 1 || n.attribute_size() ||
      !is_scalar_const(n.input(1), static_cast<float>(M_SQRT2))) {
    return 0;
  }
  const std::string& x = n.input(0);
  const onnx::NodeProto *e = next(1), *a = next(2), *m = next(3), *h = next(4);
  if (!is(e, "Erf", {n.output(0)}) || !is(a, "Add", {e->output(0), ""}) || !is_scalar_const(a->input(1), 1.f) ||
      !is(m, "Mul", {x, a->output(0)}) || !is(h, "Mul", {m->output(0), ""}) || !is_scalar_const(h->input(1), 0.5f)) {
    return 0;
  }
  onnx::NodeProto probe;  // the pattern as one node: x in, h's output out
  probe.add_input(x);
  probe.add_output(h->output(0));
  unary(probe, eltwise("gelu_erf"));
  return 5;
}

int Importer::gelu_tanh(const onnx::NodeProto& n) {
  // x*x -> *x -> *0.044715 -> x+ -> *sqrt(2/pi) -> Tanh -> +1 ; x*0.5 ; * (the exporter's order)
  if (n.op_type() != "Mul" || n.input_size() != 2 || n.input(0) != n.input(1) || n.output_size() != 1 ||
      n.attribute_size()) {
    return 0;
  }
  const std::string& x = n.input(0);
  const onnx::NodeProto *x3 = next(1), *c = next(2), *s = next(3), *in = next(4), *t = next(5), *t1 = next(6), *hx = next(7),
                        *y = next(8);
  if (!is(x3, "Mul", {n.output(0), x}) || !is(c, "Mul", {x3->output(0), ""}) || !is_scalar_const(c->input(1), 0.044715f) ||
      !is(s, "Add", {x, c->output(0)}) || !is(in, "Mul", {s->output(0), ""}) ||
      !is_scalar_const(in->input(1), static_cast<float>(std::sqrt(2.0 / M_PI))) || !is(t, "Tanh", {in->output(0)}) ||
      !is(t1, "Add", {t->output(0), ""}) || !is_scalar_const(t1->input(1), 1.f) || !is(hx, "Mul", {x, ""}) ||
      !is_scalar_const(hx->input(1), 0.5f) || !is(y, "Mul", {hx->output(0), t1->output(0)})) {
    return 0;
  }
  onnx::NodeProto probe;
  probe.add_input(x);
  probe.add_output(y->output(0));
  unary(probe, eltwise("gelu_tanh"));
  return 9;
}

int Importer::mish(const onnx::NodeProto& n) {
  // Softplus(x) -> Tanh -> Mul(x, .), as the exporter writes mish for opset 17.
  if (n.op_type() != "Softplus" || n.input_size() != 1 || n.output_size() != 1 || n.attribute_size()) return 0;
  const std::string& x = n.input(0);
  const onnx::NodeProto *t = next(1), *m = next(2);
  if (!is(t, "Tanh", {n.output(0)}) || !is(m, "Mul", {x, t->output(0)})) return 0;
  onnx::NodeProto probe;
  probe.add_input(x);
  probe.add_output(m->output(0));
  unary(probe, eltwise("mish"));
  return 3;
}

int Importer::argmax_then_cast(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 1, 1);
  Ref x = ref(n.input(0));
  int64_t ax = axis(a.get_int("axis", 0), rank_of(x));
  if (a.get_int("keepdims", 1) != 0 || a.get_int("select_last_index", 0) != 0) fail("only ArgMax with keepdims=0 and select_last_index=0 is supported");
  a.done();
  const onnx::NodeProto* c = next(1);
  bool cast_ok = c && c->op_type() == "Cast" && c->input_size() == 1 && c->input(0) == n.output(0) && c->output_size() == 1 &&
                 c->attribute_size() == 1 && c->attribute(0).name() == "to" && c->attribute(0).type() == onnx::AttributeProto::INT &&
                 c->attribute(0).i() == onnx::TensorProto::INT32;
  if (!cast_ok) fail("ArgMax must be followed by a Cast to INT32 (Kiln's argmax gives s32)");
  int xv = materialize(x);
  const graph::Value& in = g_.values[xv];
  if (!is_floating(in.dtype)) fail("ArgMax of " + std::string(dtype_name(in.dtype)));
  Shape s = in.shape;
  s.erase(s.begin() + ax);
  define(c->output(0), add_node(ops::Attrs("argmax").set("axis", ops::AttrValue(ax)), {xv}, c->output(0), s, DType::s32),
         identity_perm(s.size()));
  return 2;
}

int Importer::clip_then_cast(const onnx::NodeProto& n) {
  // Clip(lo, hi) -> Cast on integers: Kiln's saturating narrowing cast. (A float Clip is Kiln's
  // clip, and a float -> integer Cast is Kiln's cast: both truncate toward zero.)
  const onnx::NodeProto* cast = next(1);
  if (n.input_size() != 3 || n.output_size() != 1 || n.attribute_size() != 0 || !cast || cast->op_type() != "Cast" ||
      cast->input_size() != 1 || cast->input(0) != n.output(0) || cast->output_size() != 1) {
    fail("an integer Clip on its own is not a Kiln op (only as part of Clip + Cast)");
  }
  NodeAttrs ca(*cast, where_ + " (its Cast)");
  DType to = kiln_dtype(static_cast<int32_t>(ca.get_int("to", 0)), where_ + " Cast");
  ca.done();
  Ref in = ref(n.input(0));
  const DType from = dtype_of(in);
  if (is_floating(to)) fail("Clip + Cast from " + std::string(dtype_name(from)) + " to " + dtype_name(to));
  // ONNX's integer Cast wraps, so the Clip must bring every value into the target's range,
  // and no further (else it is not a plain saturating cast).
  auto range = [](DType d) -> std::pair<double, double> {
    if (d == DType::u8) return {0, 255};
    if (d == DType::s8) return {-128, 127};
    return {std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()};
  };
  auto [slo, shi] = range(from);
  auto [tlo, thi] = range(to);
  const double lo = std::max<double>(scalar_input(n.input(1), "Clip min"), slo);
  const double hi = std::min<double>(scalar_input(n.input(2), "Clip max"), shi);
  if (lo != std::max(slo, tlo) || hi != std::min(shi, thi)) {
    fail("Clip(" + std::to_string(lo) + ", " + std::to_string(hi) + ") + Cast from " + dtype_name(from) + " to " +
         dtype_name(to) + " is not a saturating cast (Kiln's cast clips to [" + std::to_string(std::max(slo, tlo)) + ", " +
         std::to_string(std::min(shi, thi)) + "])");
  }
  cast_node(in, to, cast->output(0));
  return 2;
}

}  // namespace kiln::runtime_export::onnx_io
