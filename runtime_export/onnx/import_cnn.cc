// The ops whose semantics the opset decides, and the CNN ops torch.onnx.export writes around
// them: Softmax/LogSoftmax (2-D coercion before opset 13), Gelu (opset 20), Reciprocal,
// reduction axes (attribute, or input from 13/18), pooling's ceil_mode and count_include_pad,
// SiLU, and LayerNorm as torch writes it before opset 17.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "runtime_export/onnx/importer.h"

namespace kiln::runtime_export::onnx_io {

void Importer::softmax(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 1, 1);
  Ref x = ref(n.input(0));
  const int r = rank_of(x);
  if (r == 0) fail(n.op_type() + " of a scalar");
  // Before opset 13 the input is coerced to 2-D at `axis` (default 1) and normalized over all
  // of [axis, rank); from 13 on over `axis` (default -1) alone.
  const bool coerced = opset_ < 13;
  const int64_t ax = axis(a.get_int("axis", coerced ? 1 : -1), r);
  a.done();
  if (!is_floating(dtype_of(x))) fail(n.op_type() + " of " + dtype_name(dtype_of(x)));
  const char* kind = n.op_type() == "Softmax" ? "softmax" : "log_softmax";
  if (x.value < 0) x = Ref{materialize(x), "", identity_perm(r)};
  if (!coerced || ax == r - 1) {
    const graph::Value& in = g_.values[x.value];
    ops::Attrs call(kind);
    call.set("axis", ops::AttrValue(int64_t{x.perm[ax]}));
    define(n.output(0), add_node(call, {x.value}, nhwc_name(n.output(0)), in.shape, in.dtype), x.perm);
    return;
  }
  // [d0, d1 .. d(axis-1), d(axis) .. ] as [d0, mid, inner] (d0 stays where the batch is), the
  // op over the last axis, and back.
  const int xv = materialize(x);
  const Shape s = g_.values[xv].shape;
  const DType dtype = g_.values[xv].dtype;
  for (int i = (ax == 0 ? 0 : 1); i < r; ++i) {
    if (s[i] == kBatch) fail("axis " + std::to_string(ax) + " (coerced to 2-D before opset 13) would normalize across the batch of " + shape_str(s));
  }
  int64_t mid = 1, inner = 1;
  for (int i = 1; i < r; ++i) (i < ax ? mid : inner) *= s[i];
  Shape three = ax == 0 ? Shape{1, 1, s[0] * inner} : Shape{s[0], mid, inner};
  std::vector<int64_t> to3 = ax == 0 ? std::vector<int64_t>{1, 1, -1} : std::vector<int64_t>{0, mid, inner};
  int v = add_node(ops::Attrs("reshape").set("shape", to3), {xv}, n.output(0) + "_2d", three, dtype);
  v = add_node(ops::Attrs(kind).set("axis", ops::AttrValue(int64_t{2})), {v}, n.output(0) + "_coerced", three, dtype);
  std::vector<int64_t> back(s.begin(), s.end());
  back[0] = 0;
  if (ax == 0) back[0] = s[0];
  define(n.output(0), add_node(ops::Attrs("reshape").set("shape", back), {v}, n.output(0), s, dtype), identity_perm(r));
}

void Importer::gelu(const onnx::NodeProto& n, NodeAttrs& a) {
  if (opset_ < 20) fail("Gelu is an opset 20 op; this model declares opset " + std::to_string(opset_));
  want_inputs(n, 1, 1);
  const std::string approximate = a.get_string("approximate", "none");
  a.done();
  if (approximate == "none") unary(n, eltwise("gelu_erf"));
  else if (approximate == "tanh") unary(n, eltwise("gelu_tanh"));
  else fail("attribute 'approximate' is '" + approximate + "'; Gelu takes 'none' or 'tanh'");
}

void Importer::reciprocal(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 1, 1);
  a.done();
  unary(n, eltwise("pow", 1.f, -1.f));  // 1 * x^-1
}

std::vector<int64_t> Importer::reduce_axes(const onnx::NodeProto& n, NodeAttrs& a, bool* noop) {
  // ReduceSum reads its axes from an input from opset 13 on, the other reductions from 18 on;
  // before, from the attribute. noop_with_empty_axes came with the input.
  const bool from_input = n.op_type() == "ReduceSum" ? opset_ >= 13 : opset_ >= 18;
  want_inputs(n, 1, from_input ? 2 : 1);
  *noop = false;
  if (!from_input) return a.get_ints("axes", {});
  std::vector<int64_t> axes;
  if (n.input_size() == 2 && !n.input(1).empty()) axes = int64_input(n.input(1), "axes");
  *noop = a.get_int("noop_with_empty_axes", 0) != 0 && axes.empty();
  return axes;
}

std::vector<int64_t> Importer::ceil_mode_pads(const std::vector<int64_t>& pads, const Shape& nhwc,
                                              const std::vector<int64_t>& kernel, const std::vector<int64_t>& strides) {
  // ceil_mode: one more window where floor division drops a partial one, but (as in PyTorch
  // and ONNX Runtime) none that starts in the end padding. Kiln gets it as end padding, which
  // max and average pooling both leave out.
  std::vector<int64_t> out = pads;
  for (int d = 0; d < 2; ++d) {
    const int64_t in = nhwc[1 + d], k = kernel[d], s = strides[d], before = pads[d], after = pads[d + 2];
    const int64_t span = in + before + after - k;
    if (span < 0) continue;  // no window fits: plan_pool2d says so
    int64_t windows = (span + s - 1) / s + 1;
    if ((windows - 1) * s >= in + before) --windows;
    const int64_t extra = (windows - 1) * s + k - (in + before + after);
    if (extra > 0) out[d + 2] += extra;
  }
  return out;
}

int Importer::include_pad_scale(int avg, const std::vector<int64_t>& pads, const std::vector<int64_t>& kernel,
                                const std::vector<int64_t>& strides, const Shape& nhwc_in) {
  // count_include_pad=1 divides by the window clipped to the padded input (PyTorch's rule,
  // which ceil_mode's extra cells do not count in); Kiln averages over the real cells. The
  // ratio depends on the position only: one [1, H, W, 1] constant.
  const Shape out = g_.values[avg].shape;
  std::vector<float> ratio;
  bool all_one = true;
  for (int64_t oh = 0; oh < out[1]; ++oh) {
    for (int64_t ow = 0; ow < out[2]; ++ow) {
      int64_t counted = 1, real = 1;
      for (int d = 0; d < 2; ++d) {
        const int64_t o = d == 0 ? oh : ow, in = nhwc_in[1 + d];
        const int64_t start = o * strides[d] - pads[d];
        const int64_t end = std::min(start + kernel[d], in + pads[d + 2]);
        counted *= end - start;
        real *= std::min(end, in) - std::max<int64_t>(start, 0);
      }
      if (real <= 0 || counted <= 0) fail("a pooling window holds padding alone");
      ratio.push_back(static_cast<float>(static_cast<double>(real) / static_cast<double>(counted)));
      all_one = all_one && real == counted;
    }
  }
  if (all_one) return avg;
  Tensor t = Tensor::from_vector(ratio, Shape{1, out[1], out[2], 1});
  const int scale = add_value(g_.values[avg].name + "_count_include_pad", t.shape(), t.dtype());
  g_.constants.push_back({scale, false, t});
  return add_node(ops::Attrs("mul"), {avg, scale}, g_.values[avg].name + "_include_pad", out, g_.values[avg].dtype);
}

int Importer::gelu_tanh_torch(const onnx::NodeProto& n) {
  // torch.onnx's tanh GELU before opset 20, constants on either side:
  // x*x -> *x -> *0.044715 -> +x -> *sqrt(2/pi) -> Tanh -> +1 -> *x -> *0.5
  if (n.op_type() != "Mul" || n.input_size() != 2 || n.input(0) != n.input(1) || n.output_size() != 1 || n.attribute_size()) {
    return 0;
  }
  const std::string& x = n.input(0);
  // `m` is `op` of `a` and one other operand, in either order: that operand, else "".
  auto other = [&](const onnx::NodeProto* m, const char* op, const std::string& a) -> std::string {
    if (!is(m, op, {"", ""})) return "";
    if (m->input(0) == a) return m->input(1);
    if (m->input(1) == a) return m->input(0);
    return "";
  };
  auto scaled = [&](const onnx::NodeProto* m, const char* op, const std::string& a, float c) {
    const std::string k = other(m, op, a);
    return !k.empty() && is_scalar_const(k, c);
  };
  const onnx::NodeProto *cube = next(1), *c = next(2), *s = next(3), *in = next(4), *t = next(5), *t1 = next(6),
                        *xt = next(7), *y = next(8);
  if (other(cube, "Mul", x) != n.output(0) || !scaled(c, "Mul", cube->output(0), 0.044715f) ||
      other(s, "Add", x) != c->output(0) || !scaled(in, "Mul", s->output(0), static_cast<float>(std::sqrt(2.0 / M_PI))) ||
      !is(t, "Tanh", {in->output(0)}) || !scaled(t1, "Add", t->output(0), 1.f) || other(xt, "Mul", x) != t1->output(0) ||
      !scaled(y, "Mul", xt->output(0), 0.5f)) {
    return 0;
  }
  onnx::NodeProto probe;
  probe.add_input(x);
  probe.add_output(y->output(0));
  unary(probe, eltwise("gelu_tanh"));
  return 9;
}

bool Importer::read_only_by(const std::string& value, std::initializer_list<const onnx::NodeProto*> nodes) {
  for (int i : readers(value)) {
    if (i < 0 || std::find(nodes.begin(), nodes.end(), &gp_.node(i)) == nodes.end()) return false;  // -1: a graph output
  }
  return true;
}

int Importer::silu(const onnx::NodeProto& n) {
  // Sigmoid(x) -> Mul(x, .) in either operand order, when nothing else reads the Sigmoid.
  if (n.op_type() != "Sigmoid" || n.input_size() != 1 || n.output_size() != 1 || n.attribute_size()) return 0;
  const std::string &x = n.input(0), &s = n.output(0);
  const onnx::NodeProto* m = next(1);
  if (!is(m, "Mul", {x, s}) && !is(m, "Mul", {s, x})) return 0;
  if (!read_only_by(s, {m})) return 0;
  onnx::NodeProto probe;
  probe.add_input(x);
  probe.add_output(m->output(0));
  unary(probe, eltwise("swish", 1.f));
  return 2;
}

}  // namespace kiln::runtime_export::onnx_io
