// Each Kiln op kind as ONNX nodes, choosing NHWC or NCHW per value.
#include <cmath>

#include "runtime_export/onnx/exporter.h"
#include "runtime_export/onnx/onnx_export.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/pool.h"

namespace kiln::runtime_export {
namespace onnx_io {

void Exporter::write_conv(const Node& n) {
  Conv2dAttrs conv;
  Epilogue act;
  if (n.call.is(ops::OpKind::fused_conv2d)) {
    ops::FusedConv2dAttrs fused = ops::parse_attrs_of<ops::OpKind::fused_conv2d>(n.call);
    conv = fused.conv;
    act = fused.activation;
  } else {
    conv = ops::parse_attrs_of<ops::OpKind::conv2d>(n.call);
    act = ops::epilogue_of(conv.activation);
  }
  const int x = n.inputs[0], w = n.inputs[1];
  std::string weights = const_[w] ? const_form(w, "oihw") : tmp(name_[w] + "_oihw");
  if (!const_[w]) set_attr(emit("Transpose", {native(w)}, {weights}), "perm", to_int64(kHwioToOihw));
  std::vector<std::string> ins{nchw(x), weights};
  if (n.inputs.size() > 2) ins.push_back(native(n.inputs[2]));
  const bool residual = n.inputs.size() > 3;
  const int y = n.outputs[0];
  std::string conv_out = residual || act != Epilogue::none ? tmp(name_[y] + "_conv") : out(y, true);
  emit_conv(ins, conv_out, val(x).shape, val(w).shape, conv);
  std::string last = conv_out;
  if (residual) {
    std::string sum = act != Epilogue::none ? tmp(name_[y] + "_sum") : out(y, true);
    emit("Add", {conv_out, nchw(n.inputs[3])}, {sum});
    last = sum;
  }
  if (act != Epilogue::none) write_epilogue(act, last, out(y, true));
}

onnx::NodeProto* Exporter::emit_conv(const std::vector<std::string>& ins, const std::string& out, const Shape& xs,
                                     const Shape& ws, const Conv2dAttrs& conv) {
  if (xs.size() != 4 || ws.size() != 4) fail("conv2d wants NHWC input and HWIO weights, got " + shape_str(xs) + ", " + shape_str(ws));
  if (xs[1] < 0 || xs[2] < 0) fail("conv2d input " + shape_str(xs) + " has a symbolic spatial size");
  std::string shapes = shape_str(xs) + " * " + shape_str(ws);
  SpatialPlan ph = plan_spatial(xs[1], ws[0], conv.strides[0], conv.dilation[0], conv.padding, "conv2d", shapes,
                                pads_of_dim(conv.pads, 0));
  SpatialPlan pw = plan_spatial(xs[2], ws[1], conv.strides[1], conv.dilation[1], conv.padding, "conv2d", shapes,
                                pads_of_dim(conv.pads, 1));
  auto* c = emit("Conv", ins, {out});
  set_attr(c, "kernel_shape", std::vector<int64_t>{ws[0], ws[1]});
  set_attr(c, "strides", std::vector<int64_t>{conv.strides[0], conv.strides[1]});
  set_attr(c, "dilations", std::vector<int64_t>{conv.dilation[0], conv.dilation[1]});
  set_attr(c, "pads", std::vector<int64_t>{ph.pad_before, pw.pad_before, ph.pad_after, pw.pad_after});
  set_attr(c, "group", conv.groups);
  return c;
}

void Exporter::write_pool(const Node& n) {
  Pool2dAttrs p = ops::parse_attrs<Pool2dAttrs>(n.call);
  const int x = n.inputs[0];
  const Shape& xs = val(x).shape;
  if (xs.size() != 4 || xs[1] < 0 || xs[2] < 0) fail("pooling wants a static NHWC input, got " + shape_str(xs));
  const Pool2dPlan geometry = plan_pool2d(xs, p, n.call.op().c_str(), shape_str(xs));
  const SpatialPlan &ph = geometry.h, &pw = geometry.w;
  const int64_t sh = geometry.stride_h, sw = geometry.stride_w;
  const bool max = n.call.is(ops::OpKind::max_pool2d);
  if (p.pool_size[0] == xs[1] && p.pool_size[1] == xs[2] && ph.out == 1 && pw.out == 1 && ph.pad_before == 0 &&
      ph.pad_after == 0 && pw.pad_before == 0 && pw.pad_after == 0) {  // one window over the whole image
    emit(max ? "GlobalMaxPool" : "GlobalAveragePool", {nchw(x)}, {out(n.outputs[0], true)});
    return;
  }
  auto* node = emit(max ? "MaxPool" : "AveragePool", {nchw(x)}, {out(n.outputs[0], true)});
  set_attr(node, "kernel_shape", std::vector<int64_t>{p.pool_size[0], p.pool_size[1]});
  set_attr(node, "strides", std::vector<int64_t>{sh, sw});
  set_attr(node, "pads", std::vector<int64_t>{ph.pad_before, pw.pad_before, ph.pad_after, pw.pad_after});
  if (!max) set_attr(node, "count_include_pad", int64_t{0});  // Keras averages over real cells only
}

void Exporter::write_linear(const Node& n) {
  Epilogue act = n.call.is(ops::OpKind::fused_linear)
                     ? ops::parse_attrs_of<ops::OpKind::fused_linear>(n.call).activation
                     : ops::epilogue_of(ops::parse_attrs_of<ops::OpKind::linear>(n.call).activation);
  const int x = n.inputs[0], w = n.inputs[1], y = n.outputs[0];
  const bool bias = n.inputs.size() > 2, residual = n.inputs.size() > 3;
  if (rank(w) != 2) fail("linear weights must be [K, N], got " + shape_str(val(w).shape));
  const bool more = residual || act != Epilogue::none;
  std::string lin = more ? tmp(name_[y] + "_linear") : out(y, false);
  if (rank(x) == 2) {
    std::vector<std::string> ins{native(x), native(w)};
    if (bias) ins.push_back(native(n.inputs[2]));
    emit("Gemm", ins, {lin});
  } else if (bias) {
    std::string mm = tmp(name_[y] + "_matmul");
    emit("MatMul", {native(x), native(w)}, {mm});
    emit("Add", {mm, native(n.inputs[2])}, {lin});
  } else {
    emit("MatMul", {native(x), native(w)}, {lin});
  }
  std::string last = lin;
  if (residual) {
    std::string sum = act != Epilogue::none ? tmp(name_[y] + "_sum") : out(y, false);
    emit("Add", {lin, native(n.inputs[3])}, {sum});
    last = sum;
  }
  if (act != Epilogue::none) write_epilogue(act, last, out(y, false));
}

void Exporter::write_binary(const Node& n) {
  using K = ops::OpKind;
  const K op = n.call.kind();
  const int y = n.outputs[0];
  const bool as_nchw = stays_nchw(n.inputs, y);
  std::vector<std::string> ins{in(n.inputs[0], as_nchw), in(n.inputs[1], as_nchw)};
  const char* onnx_op = nullptr;
  bool comparison = false;
  switch (op) {
    case K::add: onnx_op = "Add"; break;
    case K::sub: onnx_op = "Sub"; break;
    case K::mul: onnx_op = "Mul"; break;
    case K::div: onnx_op = "Div"; break;
    case K::maximum: onnx_op = "Max"; break;
    case K::minimum: onnx_op = "Min"; break;
    case K::add_relu: {
      std::string s = tmp(name_[y] + "_sum");
      emit("Add", ins, {s});
      emit("Relu", {s}, {out(y, as_nchw)});
      return;
    }
    case K::equal: onnx_op = "Equal", comparison = true; break;
    case K::greater: onnx_op = "Greater", comparison = true; break;
    case K::greater_equal: onnx_op = "GreaterOrEqual", comparison = true; break;
    case K::less: onnx_op = "Less", comparison = true; break;
    default: fail("not a binary op");
  }
  if (comparison) {
    std::string b = tmp(name_[y] + "_bool");
    emit(onnx_op, ins, {b});
    set_attr(emit("Cast", {b}, {out(y, as_nchw)}), "to", int64_t{onnx_elem_type(val(y).dtype)});  // Kiln gives 1/0 in a's dtype
  } else {
    emit(onnx_op, ins, {out(y, as_nchw)});
  }
}

void Exporter::write_reduce(const Node& n) {
  const int x = n.inputs[0], y = n.outputs[0], r = rank(x);
  const ops::ReduceAttrs reduce = ops::parse_attrs<ops::ReduceAttrs>(n.call);
  const bool keep = reduce.keepdims;
  std::vector<int64_t> axes;
  for (int a : reduce.axes) axes.push_back(axis_of(a, r));
  if (axes.empty()) {
    for (int a = 0; a < r; ++a) axes.push_back(a);
  }
  // NCHW in and out when the reduced value keeps its axis order in both layouts.
  bool as_nchw = r == 4 && !const_[x] && !nchw_[x].empty();
  if (as_nchw && !keep) {
    std::vector<int> kept;
    for (int i : kToNchw) {
      if (std::find(axes.begin(), axes.end(), i) == axes.end()) kept.push_back(i);
    }
    as_nchw = std::is_sorted(kept.begin(), kept.end());
  }
  std::vector<int64_t> onnx_axes;
  for (int64_t a : axes) onnx_axes.push_back(as_nchw ? nchw_axis(a) : a);
  std::sort(onnx_axes.begin(), onnx_axes.end());
  std::string result = out(y, as_nchw && keep);
  onnx::NodeProto* node;
  if (n.call.is(ops::OpKind::reduce_sum)) {
    node = emit("ReduceSum", {in(x, as_nchw), int64s(onnx_axes)}, {result});  // axes are an input since opset 13
  } else {
    node = emit(n.call.is(ops::OpKind::reduce_mean) ? "ReduceMean" : "ReduceMax", {in(x, as_nchw)}, {result});
    set_attr(node, "axes", onnx_axes);
  }
  set_attr(node, "keepdims", int64_t{keep});
}

void Exporter::write_cast(const Node& n) {
  const int x = n.inputs[0], y = n.outputs[0];
  DType from = val(x).dtype, to = dtype_from_name(n.call.get_string("dtype"));
  const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
  std::string src = in(x, as_nchw), dst = out(y, as_nchw);
  if (is_floating(from) && is_floating(to)) {  // f32 <-> bf16: both are fp32 in the export
    emit("Identity", {src}, {dst});
    return;
  }
  // ONNX's Cast truncates toward zero as Kiln's cast does; Kiln also saturates (cast.h), which
  // a Clip to the target's range gives where the source reaches beyond it. Left to the ONNX
  // runtime: NaN (Kiln gives 0), and f32 at or beyond 2^31 in s32, which this Clip ends at
  // 2147483520 (the largest float below 2^31) where Kiln gives 2147483647.
  auto range = [](DType d) -> std::pair<double, double> {
    switch (d) {
      case DType::u8: return {0, 255};
      case DType::s8: return {-128, 127};
      case DType::s32: return {-2147483648.0, 2147483520.0};
      default: return {-3.4e38, 3.4e38};
    }
  };
  std::string cur = src;
  auto [lo, hi] = range(to);
  auto [flo, fhi] = range(from);
  if (lo > flo || hi < fhi) {
    std::string c = tmp(name_[y] + "_clip");
    emit("Clip", {cur, scalar_in(from, lo), scalar_in(from, hi)}, {c});
    cur = c;
  }
  set_attr(emit("Cast", {cur}, {dst}), "to", int64_t{onnx_elem_type(to)});
}

void Exporter::write_matmul(const Node& n) {
  emit("MatMul", {native(n.inputs[0]), native(n.inputs[1])}, {out(n.outputs[0], false)});
}

void Exporter::write_batch_norm(const Node& n) {
  const ops::BatchNormAttrs bn = ops::parse_attrs_of<ops::OpKind::batch_norm_inference>(n.call);
  const int x = n.inputs[0], y = n.outputs[0];
  if (rank(x) != 4 && rank(x) != 2) fail("batch_norm_inference of rank " + std::to_string(rank(x)) + " (ONNX wants the channel at axis 1)");
  const bool as_nchw = rank(x) == 4;
  std::string out_name = bn.relu ? tmp(name_[y] + "_bn") : out(y, as_nchw);
  auto* node = emit("BatchNormalization", {in(x, as_nchw), native(n.inputs[1]), native(n.inputs[2]), native(n.inputs[3]), native(n.inputs[4])}, {out_name});
  set_attr(node, "epsilon", static_cast<float>(bn.epsilon));
  if (bn.relu) emit("Relu", {out_name}, {out(y, as_nchw)});
}

void Exporter::write_softmax(const Node& n) {
  const int x = n.inputs[0], y = n.outputs[0];
  const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
  int64_t axis = axis_of(ops::parse_attrs<ops::AxisAttrs>(n.call).axis, rank(x));
  auto* node = emit(n.call.is(ops::OpKind::softmax) ? "Softmax" : "LogSoftmax", {in(x, as_nchw)}, {out(y, as_nchw)});
  set_attr(node, "axis", as_nchw ? nchw_axis(axis) : axis);
}

void Exporter::write_argmax(const Node& n) {
  const int x = n.inputs[0], y = n.outputs[0];
  std::string idx = tmp(name_[y] + "_int64");
  auto* node = emit("ArgMax", {native(x)}, {idx});
  set_attr(node, "axis", axis_of(ops::parse_attrs_of<ops::OpKind::argmax>(n.call).axis, rank(x)));
  set_attr(node, "keepdims", int64_t{0});
  set_attr(emit("Cast", {idx}, {out(y, false)}), "to", int64_t{onnx::TensorProto::INT32});
}

void Exporter::write_reshape(const Node& n) {
  const Shape& shape = ops::parse_attrs_of<ops::OpKind::reshape>(n.call).shape;
  emit("Reshape", {native(n.inputs[0]), int64s(shape)}, {out(n.outputs[0], false)});  // 0 copies, as in Kiln
}

void Exporter::write_permute(const Node& n) {
  const int x = n.inputs[0];
  const std::vector<int> perm = ops::parse_attrs_of<ops::OpKind::permute>(n.call).perm;
  if (static_cast<int>(perm.size()) != rank(x)) {
    fail("perm " + shape_str(Shape(perm.begin(), perm.end())) + " for rank " + std::to_string(rank(x)));
  }
  Perm p;
  for (int a : perm) p.push_back(static_cast<int>(axis_of(a, rank(x))));
  check_perm(p, rank(x), "permute");
  // From the NCHW form when that is all there is: one Transpose instead of two.
  const bool from_nchw = !const_[x] && rank(x) == 4 && native_[x].empty() && !nchw_[x].empty();
  if (from_nchw) p = compose(kToNhwc, p);
  set_attr(emit("Transpose", {in(x, from_nchw)}, {out(n.outputs[0], false)}), "perm", to_int64(p));
}

void Exporter::write_slice(const Node& n) {
  const ops::SliceAttrs s = ops::parse_attrs_of<ops::OpKind::slice>(n.call);
  const int x = n.inputs[0];
  const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
  int64_t axis = axis_of(s.axis, rank(x));
  emit("Slice",
       {in(x, as_nchw), int64s({s.start}), int64s({s.end}), int64s({as_nchw ? nchw_axis(axis) : axis}), int64s({s.step})},
       {out(n.outputs[0], as_nchw)});
}

void Exporter::write_identity(const Node& n) {
  const int x = n.inputs[0];
  const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
  emit("Identity", {in(x, as_nchw)}, {out(n.outputs[0], as_nchw)});
}

void Exporter::write_broadcast_to(const Node& n) {
  const Shape& shape = ops::parse_attrs_of<ops::OpKind::broadcast_to>(n.call).shape;
  for (int64_t d : shape) {
    if (d < 0) fail("broadcast_to shape has a negative dimension");
  }
  emit("Expand", {native(n.inputs[0]), int64s(shape)}, {out(n.outputs[0], false)});
}

void Exporter::write_concat(const Node& n) {
  const int y = n.outputs[0];
  bool as_nchw = stays_nchw(n.inputs, y);
  int64_t axis = axis_of(ops::parse_attrs_of<ops::OpKind::concat>(n.call).axis, rank(y));
  std::vector<std::string> ins;
  for (int i : n.inputs) ins.push_back(in(i, as_nchw));
  set_attr(emit("Concat", ins, {out(y, as_nchw)}), "axis", as_nchw ? nchw_axis(axis) : axis);
}

void Exporter::write_eltwise_node(const Node& n) {
  const int x = n.inputs[0], y = n.outputs[0];
  const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
  const ops::EltwiseAttrs a = ops::parse_attrs<ops::EltwiseAttrs>(n.call);
  write_eltwise(*ops::eltwise_kind_of(n.call.kind()), a.alpha, a.beta, in(x, as_nchw), out(y, as_nchw));
}

Exporter::Rule Exporter::rule(ops::OpKind kind) {
  using K = ops::OpKind;
  switch (kind) {
    case K::add_relu: return {&Exporter::write_binary, "Add + Relu"};
    case K::equal: return {&Exporter::write_binary, "Equal + Cast"};
    case K::greater: return {&Exporter::write_binary, "Greater + Cast"};
    case K::greater_equal: return {&Exporter::write_binary, "GreaterOrEqual + Cast"};
    case K::less: return {&Exporter::write_binary, "Less + Cast"};
    case K::add: return {&Exporter::write_binary, "Add"};
    case K::sub: return {&Exporter::write_binary, "Sub"};
    case K::mul: return {&Exporter::write_binary, "Mul"};
    case K::div: return {&Exporter::write_binary, "Div"};
    case K::maximum: return {&Exporter::write_binary, "Max"};
    case K::minimum: return {&Exporter::write_binary, "Min"};
    case K::matmul: return {&Exporter::write_matmul, "MatMul"};
    case K::scaled_dot_product_attention:
      return {&Exporter::write_attention, "Transpose, MatMul, Mul, (Greater, Cast, Sub, Add), Softmax, (Mul), MatMul"};
    case K::linear:
    case K::fused_linear:
      return {&Exporter::write_linear, "Gemm or MatMul (+ Add, activation)"};
    case K::conv2d:
    case K::fused_conv2d:
      return {&Exporter::write_conv, "Conv (+ Add, activation)"};
    case K::quantize_linear: return {&Exporter::write_quantize, "QuantizeLinear"};
    case K::dequantize_linear: return {&Exporter::write_quantize, "DequantizeLinear"};
    case K::qconv2d: return {&Exporter::write_quantized_layer, "QDQ around Conv"};
    case K::qlinear: return {&Exporter::write_quantized_layer, "QDQ around Gemm or MatMul"};
    case K::max_pool2d: return {&Exporter::write_pool, "MaxPool"};
    case K::avg_pool2d: return {&Exporter::write_pool, "AveragePool"};
    case K::batch_norm: return {nullptr, "batch_norm with batch statistics is a training op; trace the model for inference"};
    case K::batch_norm_inference: return {&Exporter::write_batch_norm, "BatchNormalization"};
    case K::softmax: return {&Exporter::write_softmax, "Softmax"};
    case K::log_softmax: return {&Exporter::write_softmax, "LogSoftmax"};
    case K::sparse_softmax_cross_entropy: return {nullptr, "a loss: training only, no ONNX mapping in Kiln's exporter"};
    case K::reduce_sum: return {&Exporter::write_reduce, "ReduceSum"};
    case K::reduce_mean: return {&Exporter::write_reduce, "ReduceMean"};
    case K::reduce_max: return {&Exporter::write_reduce, "ReduceMax"};
    case K::argmax: return {&Exporter::write_argmax, "ArgMax + Cast"};
    case K::cast: return {&Exporter::write_cast, "Cast (Round, Clip)"};
    case K::one_hot: return {nullptr, "no ONNX mapping in Kiln's exporter (labels are not model inputs)"};
    case K::reshape: return {&Exporter::write_reshape, "Reshape"};
    case K::permute: return {&Exporter::write_permute, "Transpose"};
    case K::slice: return {&Exporter::write_slice, "Slice"};
    case K::contiguous:
    case K::identity:
      return {&Exporter::write_identity, "Identity"};
    case K::broadcast_to: return {&Exporter::write_broadcast_to, "Expand"};
    case K::concat: return {&Exporter::write_concat, "Concat"};
    case K::gather: return {&Exporter::write_gather, "Gather"};
    case K::layer_norm: return {&Exporter::write_layer_norm, "LayerNormalization (opset 17)"};
    case K::conv_transpose2d: return {&Exporter::write_conv_transpose, "ConvTranspose (pads, output_padding)"};
    case K::resize2d: return {&Exporter::write_resize, "Resize (half_pixel; nearest rounds half up)"};
    case K::pad: return {&Exporter::write_pad, "Pad (pads and constant_value inputs, opset 11+)"};
    case K::where: return {&Exporter::write_logical, "Cast to BOOL + Where"};
    case K::logical_not: return {&Exporter::write_logical, "Cast to BOOL + Not + Cast"};
    case K::logical_and: return {&Exporter::write_logical, "Cast to BOOL + And + Cast"};
    case K::logical_or: return {&Exporter::write_logical, "Cast to BOOL + Or + Cast"};
    case K::erf: return {&Exporter::write_logical, "Erf"};
    case K::lstm: return {&Exporter::write_rnn, "LSTM (gates iofc) between Transposes; no mask"};
    case K::gru: return {&Exporter::write_rnn, "GRU (linear_before_reset=1) between Transposes; no mask"};
    case K::simple_rnn: return {&Exporter::write_rnn, "RNN (Tanh) between Transposes; no mask"};
    KILN_ELTWISE_OPS(KILN_OP_CASE)
    return {&Exporter::write_eltwise_node, "element-wise (GELU written out)"};
  }
  throw std::logic_error(std::string("op kind ") + ops::op_kind_name(kind) + " has no decision in the ONNX exporter");
}

void Exporter::write(const Node& n) {
  if (!n.call.registered()) fail("op '" + n.call.op() + "' is not a registered op kind");
  const ops::OpKind kind = n.call.kind();
  const bool recurrent = kind == ops::OpKind::lstm || kind == ops::OpKind::gru || kind == ops::OpKind::simple_rnn;
  if (n.outputs.size() != 1 && !recurrent) fail("expected one output, got " + std::to_string(n.outputs.size()));
  Rule r = rule(n.call.kind());
  if (!r.write) fail(std::string("op '") + n.call.op() + "' is not supported: " + r.onnx);
  (this->*r.write)(n);
}

}  // namespace onnx_io

ops::Support onnx_export_support(ops::OpKind kind) {
  onnx_io::Exporter::Rule r = onnx_io::Exporter::rule(kind);
  return r.write ? ops::supported(r.onnx) : ops::unsupported(r.onnx);
}

}  // namespace kiln::runtime_export
