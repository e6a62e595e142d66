// Each Kiln op kind as ONNX nodes, choosing NHWC or NCHW per value.
#include <cmath>

#include "runtime_export/onnx/exporter.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/pool.h"

namespace kiln::runtime_export::onnx_io {

void Exporter::write_conv(const Node& n, bool fused) {
  Conv2dAttrs conv = fused ? conv2d_geometry_from(n.call) : conv2d_options_from(n.call);
  Epilogue act = fused ? epilogue_from_name(n.call.get_string("activation"))
                       : (conv.activation == FusedActivation::relu ? Epilogue::relu : Epilogue::none);
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
  SpatialPlan ph = plan_spatial(xs[1], ws[0], conv.strides[0], conv.dilation[0], conv.padding, "conv2d", shapes);
  SpatialPlan pw = plan_spatial(xs[2], ws[1], conv.strides[1], conv.dilation[1], conv.padding, "conv2d", shapes);
  auto* c = emit("Conv", ins, {out});
  set_attr(c, "kernel_shape", std::vector<int64_t>{ws[0], ws[1]});
  set_attr(c, "strides", std::vector<int64_t>{conv.strides[0], conv.strides[1]});
  set_attr(c, "dilations", std::vector<int64_t>{conv.dilation[0], conv.dilation[1]});
  set_attr(c, "pads", std::vector<int64_t>{ph.pad_before, pw.pad_before, ph.pad_after, pw.pad_after});
  set_attr(c, "group", conv.groups);
  return c;
}

void Exporter::write_pool(const Node& n) {
  Pool2dAttrs p = pool2d_options_from(n.call);
  const int x = n.inputs[0];
  const Shape& xs = val(x).shape;
  if (xs.size() != 4 || xs[1] < 0 || xs[2] < 0) fail("pooling wants a static NHWC input, got " + shape_str(xs));
  int64_t sh = p.strides[0] ? p.strides[0] : p.pool_size[0], sw = p.strides[1] ? p.strides[1] : p.pool_size[1];
  SpatialPlan ph = plan_spatial(xs[1], p.pool_size[0], sh, 1, p.padding, n.call.op().c_str(), shape_str(xs));
  SpatialPlan pw = plan_spatial(xs[2], p.pool_size[1], sw, 1, p.padding, n.call.op().c_str(), shape_str(xs));
  const bool max = n.call.op() == "max_pool2d";
  auto* node = emit(max ? "MaxPool" : "AveragePool", {nchw(x)}, {out(n.outputs[0], true)});
  set_attr(node, "kernel_shape", std::vector<int64_t>{p.pool_size[0], p.pool_size[1]});
  set_attr(node, "strides", std::vector<int64_t>{sh, sw});
  set_attr(node, "pads", std::vector<int64_t>{ph.pad_before, pw.pad_before, ph.pad_after, pw.pad_after});
  if (!max) set_attr(node, "count_include_pad", int64_t{0});  // Keras averages over real cells only
}

void Exporter::write_linear(const Node& n, bool fused) {
  Epilogue act = fused ? epilogue_from_name(n.call.get_string("activation"))
                       : (fused_activation_from_name(n.call.get_string("activation")) == FusedActivation::relu
                              ? Epilogue::relu
                              : Epilogue::none);
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
  static const std::map<std::string, std::string> kOps = {
      {"add", "Add"}, {"sub", "Sub"}, {"mul", "Mul"}, {"div", "Div"}, {"maximum", "Max"}, {"minimum", "Min"},
      {"add_relu", "Add"}, {"equal", "Equal"}, {"greater", "Greater"}, {"greater_equal", "GreaterOrEqual"},
      {"less", "Less"}};
  const std::string& op = n.call.op();
  const int y = n.outputs[0];
  const bool as_nchw = stays_nchw(n.inputs, y);
  std::vector<std::string> ins{in(n.inputs[0], as_nchw), in(n.inputs[1], as_nchw)};
  if (op == "add_relu") {
    std::string s = tmp(name_[y] + "_sum");
    emit("Add", ins, {s});
    emit("Relu", {s}, {out(y, as_nchw)});
  } else if (op == "equal" || op == "greater" || op == "greater_equal" || op == "less") {
    std::string b = tmp(name_[y] + "_bool");
    emit(kOps.at(op), ins, {b});
    set_attr(emit("Cast", {b}, {out(y, as_nchw)}), "to", int64_t{onnx_elem_type(val(y).dtype)});  // Kiln gives 1/0 in a's dtype
  } else {
    emit(kOps.at(op), ins, {out(y, as_nchw)});
  }
}

void Exporter::write_reduce(const Node& n) {
  const int x = n.inputs[0], y = n.outputs[0], r = rank(x);
  const bool keep = n.call.get_int("keepdims") != 0;
  std::vector<int64_t> axes;
  for (int64_t a : n.call.get_ints("axes")) axes.push_back(axis_of(a, r));
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
  const std::string& op = n.call.op();
  std::string result = out(y, as_nchw && keep);
  onnx::NodeProto* node;
  if (op == "reduce_sum") {
    node = emit("ReduceSum", {in(x, as_nchw), int64s(onnx_axes)}, {result});  // axes are an input since opset 13
  } else {
    node = emit(op == "reduce_mean" ? "ReduceMean" : "ReduceMax", {in(x, as_nchw)}, {result});
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

void Exporter::write(const Node& n) {
  const std::string& op = n.call.op();
  if (n.outputs.size() != 1) fail("expected one output, got " + std::to_string(n.outputs.size()));
  const int y = n.outputs[0];
  if (op == "conv2d" || op == "fused_conv2d") return write_conv(n, op == "fused_conv2d");
  if (op == "max_pool2d" || op == "avg_pool2d") return write_pool(n);
  if (op == "linear" || op == "fused_linear") return write_linear(n, op == "fused_linear");
  if (op == "reduce_sum" || op == "reduce_mean" || op == "reduce_max") return write_reduce(n);
  if (op == "cast") return write_cast(n);
  if (op == "quantize_linear" || op == "dequantize_linear") return write_quantize(n);
  if (op == "qconv2d" || op == "qlinear") return write_quantized_layer(n);
  if (op == "add" || op == "sub" || op == "mul" || op == "div" || op == "maximum" || op == "minimum" || op == "add_relu" ||
      op == "equal" || op == "greater" || op == "greater_equal" || op == "less") {
    return write_binary(n);
  }
  if (op == "matmul") {
    emit("MatMul", {native(n.inputs[0]), native(n.inputs[1])}, {out(y, false)});
    return;
  }
  if (op == "batch_norm_inference") {
    const int x = n.inputs[0];
    if (rank(x) != 4 && rank(x) != 2) fail("batch_norm_inference of rank " + std::to_string(rank(x)) + " (ONNX wants the channel at axis 1)");
    const bool as_nchw = rank(x) == 4, relu = n.call.get_int("relu") != 0;
    std::string bn = relu ? tmp(name_[y] + "_bn") : out(y, as_nchw);
    auto* node = emit("BatchNormalization", {in(x, as_nchw), native(n.inputs[1]), native(n.inputs[2]), native(n.inputs[3]), native(n.inputs[4])}, {bn});
    set_attr(node, "epsilon", static_cast<float>(n.call.get_float("epsilon")));
    if (relu) emit("Relu", {bn}, {out(y, as_nchw)});
    return;
  }
  if (op == "softmax" || op == "log_softmax") {
    const int x = n.inputs[0];
    const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
    int64_t axis = axis_of(n.call.get_int("axis"), rank(x));
    auto* node = emit(op == "softmax" ? "Softmax" : "LogSoftmax", {in(x, as_nchw)}, {out(y, as_nchw)});
    set_attr(node, "axis", as_nchw ? nchw_axis(axis) : axis);
    return;
  }
  if (op == "argmax") {
    const int x = n.inputs[0];
    std::string idx = tmp(name_[y] + "_int64");
    auto* node = emit("ArgMax", {native(x)}, {idx});
    set_attr(node, "axis", axis_of(n.call.get_int("axis"), rank(x)));
    set_attr(node, "keepdims", int64_t{0});
    set_attr(emit("Cast", {idx}, {out(y, false)}), "to", int64_t{onnx::TensorProto::INT32});
    return;
  }
  if (op == "reshape") {
    emit("Reshape", {native(n.inputs[0]), int64s(n.call.get_ints("shape"))}, {out(y, false)});  // 0 copies, as in Kiln
    return;
  }
  if (op == "permute") {
    const int x = n.inputs[0];
    const auto& perm = n.call.get_ints("perm");
    if (static_cast<int>(perm.size()) != rank(x)) fail("perm " + shape_str(perm) + " for rank " + std::to_string(rank(x)));
    Perm p;
    for (int64_t a : perm) p.push_back(static_cast<int>(axis_of(a, rank(x))));
    check_perm(p, rank(x), "permute");
    // From the NCHW form when that is all there is: one Transpose instead of two.
    const bool from_nchw = !const_[x] && rank(x) == 4 && native_[x].empty() && !nchw_[x].empty();
    if (from_nchw) p = compose(kToNhwc, p);
    set_attr(emit("Transpose", {in(x, from_nchw)}, {out(y, false)}), "perm", to_int64(p));
    return;
  }
  if (op == "slice") {
    const int x = n.inputs[0];
    const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
    int64_t axis = axis_of(n.call.get_int("axis"), rank(x));
    emit("Slice",
         {in(x, as_nchw), int64s({n.call.get_int("start")}), int64s({n.call.get_int("end")}),
          int64s({as_nchw ? nchw_axis(axis) : axis}), int64s({n.call.get_int("step")})},
         {out(y, as_nchw)});
    return;
  }
  if (op == "contiguous" || op == "identity") {
    const int x = n.inputs[0];
    const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
    emit("Identity", {in(x, as_nchw)}, {out(y, as_nchw)});
    return;
  }
  if (op == "broadcast_to") {
    const auto& shape = n.call.get_ints("shape");
    for (int64_t d : shape) {
      if (d < 0) fail("broadcast_to shape has a negative dimension");
    }
    emit("Expand", {native(n.inputs[0]), int64s(shape)}, {out(y, false)});
    return;
  }
  if (op == "concat") {
    bool as_nchw = stays_nchw(n.inputs, y);
    int64_t axis = axis_of(n.call.get_int("axis"), rank(y));
    std::vector<std::string> ins;
    for (int i : n.inputs) ins.push_back(in(i, as_nchw));
    set_attr(emit("Concat", ins, {out(y, as_nchw)}), "axis", as_nchw ? nchw_axis(axis) : axis);
    return;
  }
  for (EltwiseKind kind : all_eltwise_kinds()) {
    if (op != eltwise_name(kind)) continue;
    const int x = n.inputs[0];
    const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
    write_eltwise(kind, static_cast<float>(n.call.get_float("alpha")), static_cast<float>(n.call.get_float("beta")),
                  in(x, as_nchw), out(y, as_nchw));
    return;
  }
  if (op == "batch_norm") fail("batch_norm with batch statistics is a training op; trace the model for inference");
  fail("op '" + op + "' has no ONNX mapping in Kiln's exporter");
}


}  // namespace kiln::runtime_export::onnx_io
