// Single ONNX ops as Kiln nodes, and the dispatch over op types.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "runtime_export/onnx/importer.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/pool.h"
#include "tensor/ops/shape_ops.h"

namespace kiln::runtime_export::onnx_io {

void Importer::conv(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 2, 3);
  Ref x = ref(n.input(0)), w = ref(n.input(1));
  if (rank_of(x) != 4 || rank_of(w) != 4) fail("Conv wants NCHW input and OIHW weights, got " + shape_str(shape_of(x)) + ", " + shape_str(shape_of(w)));
  if (a.get_string("auto_pad", "NOTSET") != "NOTSET") fail("auto_pad is not supported (Kiln writes explicit pads)");
  int xv = materialize(x, kToNhwc), wv = materialize(w, kOihwToHwio);
  const Shape xs = g_.values[xv].shape, ws = g_.values[wv].shape;  // NHWC, HWIO
  std::vector<int64_t> kernel = a.get_ints("kernel_shape", {ws[0], ws[1]});
  if (kernel != std::vector<int64_t>{ws[0], ws[1]}) fail("kernel_shape " + ints_str(kernel) + " does not match weights " + shape_str(ws));
  auto strides = pair_attr(a, "strides", {1, 1}), dil = pair_attr(a, "dilations", {1, 1});
  int64_t group = a.get_int("group", 1);
  if (group <= 0 || xs[3] % group != 0 || xs[3] / group != ws[2] || ws[3] % group != 0) {
    fail("group " + std::to_string(group) + " does not fit input " + shape_str(xs) + " and weights " + shape_str(ws));
  }
  const ImportedPadding padding = padding_of(a.get_ints("pads", {0, 0, 0, 0}), xs, {ws[0], ws[1]}, strides, dil);
  a.done();
  std::vector<int> ins{xv, wv};
  if (n.input_size() == 3) {
    Ref b = ref(n.input(2));
    ins.push_back(materialize(b));
    if (shape_of(b) != Shape{ws[3]}) fail("bias " + shape_str(shape_of(b)) + " does not match " + std::to_string(ws[3]) + " filters");
  }
  for (int i : ins) {
    if (g_.values[i].dtype != DType::f32) fail("Conv input '" + g_.values[i].name + "' is not FLOAT");
  }
  ops::Attrs call("conv2d");
  call.set("strides", strides).set("dilation", dil);
  padding.set_on(call);
  call.set("groups", ops::AttrValue(group)).set("activation", "none");
  Shape out = spatial_out(xs, {ws[0], ws[1]}, strides, dil, padding, ws[3]);
  define(n.output(0), add_node(call, ins, nhwc_name(n.output(0)), out, DType::f32), kToNchw);
}

// Max pooling also runs on int8 data as it is (ONNX MaxPool takes INT8 and UINT8 from opset
// 12, and Kiln's own QDQ export writes it between int8 layers); average pooling is FLOAT only.
DType Importer::pooled_dtype(DType x, bool max) {
  if (x == DType::f32 || (max && (x == DType::u8 || x == DType::s8))) return x;
  fail(std::string(max ? "max" : "average") + " pooling input is " + dtype_name(x) + ", not FLOAT" + (max ? ", INT8 or UINT8" : ""));
}

void Importer::pool(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 1, 1);
  Ref x = ref(n.input(0));
  if (rank_of(x) != 4) fail("pooling wants an NCHW input, got " + shape_str(shape_of(x)));
  const bool max = n.op_type() == "MaxPool";
  if (a.get_string("auto_pad", "NOTSET") != "NOTSET") fail("auto_pad is not supported");
  const bool ceil_mode = a.get_int("ceil_mode", 0) != 0;
  if (max && a.get_int("storage_order", 0) != 0) fail("storage_order is not supported");
  auto kernel = pair_attr(a, "kernel_shape", {0, 0});
  auto strides = pair_attr(a, "strides", {1, 1});
  const std::vector<int64_t> dilations = pair_attr(a, "dilations", {1, 1});  // AveragePool's from opset 19
  if (dilations != std::vector<int64_t>{1, 1}) fail("attribute 'dilations' " + ints_str(dilations) + ": dilated pooling is not supported");
  const bool include_pad = !max && a.get_int("count_include_pad", 0) != 0;
  int xv = materialize(x, kToNhwc);
  const Shape xs = g_.values[xv].shape;
  const std::vector<int64_t> pads = a.get_ints("pads", {0, 0, 0, 0});
  ImportedPadding padding = padding_of(pads, xs, kernel, strides, {1, 1});  // checks pads
  if (ceil_mode) padding = padding_of(ceil_mode_pads(pads, xs, kernel, strides), xs, kernel, strides, {1, 1});
  a.done();
  const DType dtype = pooled_dtype(g_.values[xv].dtype, max);
  ops::Attrs call(max ? "max_pool2d" : "avg_pool2d");
  call.set("pool_size", kernel).set("strides", strides);
  padding.set_on(call);
  const Pool2dPlan geometry = plan_pool2d(xs, ops::parse_attrs<Pool2dAttrs>(call), call.op().c_str(), shape_str(xs));
  Shape out{xs[0], geometry.h.out, geometry.w.out, xs[3]};
  int v = add_node(call, {xv}, nhwc_name(n.output(0)), out, dtype);
  if (include_pad) v = include_pad_scale(v, pads, kernel, strides, xs);
  define(n.output(0), v, kToNchw);
}

// One window over the whole (static) image: Kiln's global pools are such pools.
void Importer::global_pool(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 1, 1);
  a.done();
  Ref x = ref(n.input(0));
  if (rank_of(x) != 4) fail(n.op_type() + " wants an NCHW input, got " + shape_str(shape_of(x)));
  int xv = materialize(x, kToNhwc);
  const Shape xs = g_.values[xv].shape;
  check_window(xs, Shape{xs[1], xs[2]});
  const bool max = n.op_type() == "GlobalMaxPool";
  const DType dtype = pooled_dtype(g_.values[xv].dtype, max);
  const std::vector<int64_t> window{xs[1], xs[2]};
  ops::Attrs call(max ? "max_pool2d" : "avg_pool2d");
  call.set("pool_size", window).set("strides", window).set("padding", "valid");
  define(n.output(0), add_node(call, {xv}, nhwc_name(n.output(0)), Shape{xs[0], 1, 1, xs[3]}, dtype), kToNchw);
}

void Importer::batch_norm(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 5, 5);
  Ref x = ref(n.input(0));
  const int r = rank_of(x);
  if (r != 4 && r != 2) fail("BatchNormalization of rank " + std::to_string(r) + " is not supported");
  float eps = a.get_float("epsilon", 1e-5f);
  a.get_float("momentum", 0.9f);  // training only
  if (a.get_int("training_mode", 0) != 0) fail("training_mode=1 is not supported");
  a.done();
  int xv = r == 4 ? materialize(x, kToNhwc) : materialize(x);
  const graph::Value in = g_.values[xv];  // a copy: materialize() below grows g_.values
  std::vector<int> ins{xv};
  for (int i = 1; i < 5; ++i) {
    Ref p = ref(n.input(i));
    if (shape_of(p) != Shape{in.shape.back()} || dtype_of(p) != DType::f32) {
      fail("parameter '" + n.input(i) + "' is " + shape_str(shape_of(p)) + ", expected FLOAT[" + std::to_string(in.shape.back()) + "]");
    }
    ins.push_back(materialize(p));
  }
  if (in.dtype != DType::f32) fail("BatchNormalization input is not FLOAT");
  ops::Attrs call("batch_norm_inference");
  call.set("epsilon", ops::AttrValue(double{eps})).set("relu", false);
  Shape s = in.shape;
  define(n.output(0), add_node(call, ins, nhwc_name(n.output(0)), s, in.dtype), r == 4 ? kToNchw : identity_perm(2));
}

void Importer::matmul(const onnx::NodeProto& n) {
  want_inputs(n, 2, 2);
  int av = materialize(ref(n.input(0))), bv = materialize(ref(n.input(1)));
  const graph::Value &a = g_.values[av], &b = g_.values[bv];
  if (a.shape.size() < 2 || b.shape.size() < 2 || a.shape.back() != b.shape[b.shape.size() - 2] || a.dtype != b.dtype ||
      !is_floating(a.dtype)) {
    fail("MatMul of " + std::string(dtype_name(a.dtype)) + shape_str(a.shape) + " and " + dtype_name(b.dtype) + shape_str(b.shape));
  }
  Shape batch = broadcast(Shape(a.shape.begin(), a.shape.end() - 2), Shape(b.shape.begin(), b.shape.end() - 2), where_);
  batch.push_back(a.shape[a.shape.size() - 2]);
  batch.push_back(b.shape.back());
  define(n.output(0), add_node(ops::Attrs("matmul"), {av, bv}, n.output(0), batch, a.dtype), identity_perm(batch.size()));
}

void Importer::binary(const onnx::NodeProto& n, const std::string& kind, const std::string& output, DType out_dtype) {
  Ref a = ref(n.input(0)), b = ref(n.input(1));
  // Computed operands seen through one permutation are combined as they are (broadcasting is
  // per axis); constants are laid out to match, with leading 1s for a lower rank.
  Perm p;
  for (const Ref* r : {&a, &b}) {
    if (r->value < 0 || is_identity(r->perm)) continue;
    if (!p.empty() && p != r->perm) p.clear();
    else p = r->perm;
  }
  if (!p.empty()) {
    for (Ref* r : {&a, &b}) {
      if (r->value >= 0 && r->perm != p) p.clear();
      if (r->value < 0 && rank_of(*r) > static_cast<int>(p.size())) p.clear();
    }
  }
  auto operand = [&](Ref& r) {
    if (p.empty()) return materialize(r);
    if (r.value < 0 && rank_of(r) < static_cast<int>(p.size())) {
      Shape s = init_tensor(r.init).shape();
      s.insert(s.begin(), p.size() - s.size(), 1);
      std::string padded = r.init + "_rank" + std::to_string(p.size());
      if (!init_tensors_.count(padded)) {
        init_tensors_[padded] = kiln::reshape(init_tensor(r.init), s).clone_detached();
        inits_[padded] = inits_.at(r.init);
      }
      r = Ref{-1, padded, identity_perm(static_cast<int>(p.size()))};
    }
    return materialize(r, inverse(p));
  };
  int av = operand(a), bv = operand(b);
  const graph::Value &x = g_.values[av], &y = g_.values[bv];
  if (x.dtype != y.dtype) fail(n.op_type() + " of " + dtype_name(x.dtype) + " and " + dtype_name(y.dtype));
  Shape s = broadcast(x.shape, y.shape, where_);
  Perm perm = p.empty() ? identity_perm(static_cast<int>(s.size())) : p;
  define(output, add_node(ops::Attrs(kind), {av, bv}, nhwc_name(output), s, out_dtype), perm);
}

void Importer::reduce(const onnx::NodeProto& n, NodeAttrs& a) {
  const bool sum = n.op_type() == "ReduceSum";
  bool noop = false;
  std::vector<int64_t> axes = reduce_axes(n, a, &noop);
  Ref x = ref(n.input(0));
  const int r = rank_of(x);
  const bool keep = a.get_int("keepdims", 1) != 0;
  a.done();
  if (noop) {  // noop_with_empty_axes=1 and no axes: the input as it is
    if (x.value < 0) x = Ref{materialize(x), "", identity_perm(r)};
    define(n.output(0), x.value, x.perm);
    return;
  }
  if (axes.empty()) {
    for (int i = 0; i < r; ++i) axes.push_back(i);
  }
  std::set<int64_t> onnx_axes;
  for (int64_t ax : axes) {
    if (!onnx_axes.insert(axis(ax, r)).second) fail("axes " + ints_str(axes) + " repeat an axis");
  }
  // Reduced in Kiln's layout: keepdims leaves the axis order alone, and without it the
  // remaining axes keep their relative order, so a permuted value needs no transpose.
  int xv = x.value;
  Perm perm = x.perm;
  if (xv < 0) {
    xv = materialize(x);
    perm = identity_perm(r);
  }
  std::vector<int64_t> kiln_axes;
  for (int64_t ax : onnx_axes) kiln_axes.push_back(perm[ax]);
  std::sort(kiln_axes.begin(), kiln_axes.end());
  const graph::Value& in = g_.values[xv];
  if (!is_floating(in.dtype)) fail("reduction of " + std::string(dtype_name(in.dtype)));
  Shape s;
  std::vector<int> kept;  // Kiln axes left, in Kiln order
  for (int i = 0; i < r; ++i) {
    bool reduced = std::find(kiln_axes.begin(), kiln_axes.end(), i) != kiln_axes.end();
    if (!reduced) s.push_back(in.shape[i]), kept.push_back(i);
    else if (keep) s.push_back(1);
  }
  Perm out_perm = perm;
  if (!keep) {
    out_perm.clear();
    for (int i = 0; i < r; ++i) {
      if (onnx_axes.count(i)) continue;
      out_perm.push_back(static_cast<int>(std::find(kept.begin(), kept.end(), perm[i]) - kept.begin()));
    }
  }
  const char* kind = sum ? "reduce_sum" : n.op_type() == "ReduceMean" ? "reduce_mean" : "reduce_max";
  ops::Attrs call(kind);
  call.set("axes", kiln_axes).set("keepdims", keep);
  define(n.output(0), add_node(call, {xv}, nhwc_name(n.output(0)), s, in.dtype), out_perm);
}

void Importer::slice(const onnx::NodeProto& n) {
  want_inputs(n, 3, 5);
  Ref x = ref(n.input(0));
  const int r = rank_of(x);
  std::vector<int64_t> starts = int64_input(n.input(1), "starts"), ends = int64_input(n.input(2), "ends");
  std::vector<int64_t> axes, steps;
  if (n.input_size() > 3) axes = int64_input(n.input(3), "axes");
  else for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (n.input_size() > 4) steps = int64_input(n.input(4), "steps");
  else steps.assign(starts.size(), 1);
  if (starts.size() != ends.size() || axes.size() != starts.size() || steps.size() != starts.size() || starts.empty()) {
    fail("Slice starts/ends/axes/steps differ in length");
  }
  if (x.value < 0) x = Ref{materialize(x), "", identity_perm(r)};
  int v = x.value;
  for (size_t k = 0; k < starts.size(); ++k) {
    int64_t a = x.perm[axis(axes[k], r)];
    const graph::Value& in = g_.values[v];
    int64_t dim = in.shape[a];
    if (dim == kBatch) fail("Slice along the batch dimension is not supported");
    if (steps[k] <= 0) fail("Slice step " + std::to_string(steps[k]) + " (Kiln slices forward only)");
    auto clamp = [&](int64_t i) { return std::clamp<int64_t>(i < 0 ? (i < -dim ? 0 : i + dim) : i, 0, dim); };
    int64_t s = clamp(starts[k]), e = std::max(clamp(ends[k]), s);
    int64_t step = std::min(steps[k], std::max<int64_t>(dim, 1));  // the same elements, no overflow
    ops::Attrs call("slice");
    call.set("axis", ops::AttrValue(a)).set("start", ops::AttrValue(s)).set("end", ops::AttrValue(e));
    call.set("step", ops::AttrValue(step));
    Shape shape = in.shape;
    shape[a] = e == s ? 0 : (e - s - 1) / step + 1;
    v = add_node(call, {v}, nhwc_name(n.output(0)), shape, in.dtype);
  }
  define(n.output(0), v, x.perm);
}

void Importer::concat(const onnx::NodeProto& n, NodeAttrs& a) {
  if (n.input_size() < 1 || n.output_size() != 1) fail("Concat takes one or more inputs and one output");
  int64_t ax = a.get_int("axis", std::numeric_limits<int64_t>::min());
  if (ax == std::numeric_limits<int64_t>::min()) fail("Concat needs an axis");
  a.done();
  std::vector<Ref> ins;
  for (const auto& s : n.input()) ins.push_back(ref(s));
  const int r = rank_of(ins[0]);
  Perm p = ins[0].value >= 0 ? ins[0].perm : identity_perm(r);
  for (const Ref& x : ins) {
    if (rank_of(x) != r) fail("Concat of different ranks");
    if (x.value < 0 || x.perm != p) p = identity_perm(r);
  }
  int64_t kiln_axis = p[axis(ax, r)];
  std::vector<int> vs;
  for (Ref& x : ins) vs.push_back(materialize(x, inverse(p)));
  Shape s = g_.values[vs[0]].shape;
  const DType dtype = g_.values[vs[0]].dtype;
  for (size_t i = 1; i < vs.size(); ++i) {
    const graph::Value& v = g_.values[vs[i]];
    for (int d = 0; d < r; ++d) {
      if (d != kiln_axis && v.shape[d] != s[d]) fail("Concat of " + shape_str(s) + " and " + shape_str(v.shape));
    }
    if (v.dtype != dtype) fail("Concat of different dtypes");
    if (v.shape[kiln_axis] == kBatch || s[kiln_axis] == kBatch) fail("Concat along the batch dimension");
    if (__builtin_add_overflow(s[kiln_axis], v.shape[kiln_axis], &s[kiln_axis])) fail("Concat size overflows");
  }
  if (vs.size() == 1 && s[kiln_axis] == kBatch) fail("Concat along the batch dimension");
  define(n.output(0), add_node(ops::Attrs("concat").set("axis", ops::AttrValue(kiln_axis)), vs, nhwc_name(n.output(0)), s, dtype), p);
}

int Importer::cast_node(const Ref& x, DType to, const std::string& output) {
  int v = x.value >= 0 ? x.value : materialize(x);
  Perm perm = x.value >= 0 ? x.perm : identity_perm(rank_of(x));
  const graph::Value& in = g_.values[v];
  define(output, add_node(ops::Attrs("cast").set("dtype", dtype_name(to)), {v}, nhwc_name(output), in.shape, to), perm);
  return 0;
}


int Importer::node(const onnx::NodeProto& n) {
  const std::string& op = n.op_type();
  if (!n.domain().empty()) fail("domain '" + n.domain() + "' is not supported");
  if (int k = shape_and_view_node(n)) return k;  // import_shape.cc, import_view.cc
  if (int k = gelu_erf(n)) return k;
  if (int k = gelu_tanh(n)) return k;
  if (int k = mish(n)) return k;
  if (int k = silu(n)) return k;
  if (int k = gelu_tanh_torch(n)) return k;
  if (int k = logical_node(n)) return k;  // import_logical.cc
  if (op == "Clip" && n.input_size() > 0 && refs_.count(n.input(0)) && !is_floating(dtype_of(ref(n.input(0))))) {
    return clip_then_cast(n);
  }
  NodeAttrs a(n, where_);
  if (op == "ArgMax") return argmax_then_cast(n, a);
  // QDQ (import_qdq.cc)
  if (op == "QuantizeLinear") return quantize(n, a), 1;
  if (op == "DequantizeLinear") return dequantize(n, a), 1;
  if ((op == "Conv" || op == "Gemm" || op == "MatMul") && int8_layer(n, a)) return 1;
  if ((op == "MaxPool" || op == "Flatten") && int8_passthrough(n, a)) return 1;
  if (op == "Conv") return conv(n, a), 1;
  if (op == "MaxPool" || op == "AveragePool") return pool(n, a), 1;
  if (op == "GlobalMaxPool" || op == "GlobalAveragePool") return global_pool(n, a), 1;
  if (op == "BatchNormalization") return batch_norm(n, a), 1;
  if (op == "Gemm") return gemm(n, a), 1;
  if (op == "Flatten") return flatten(n, a), 1;
  if (op == "Dropout") return dropout(n, a), 1;
  if (op == "Constant") return constant(n, a), 1;
  if (op == "ReduceSum" || op == "ReduceMean" || op == "ReduceMax") return reduce(n, a), 1;
  if (op == "Concat") return concat(n, a), 1;
  if (op == "Gather") return gather(n, a), 1;
  if (op == "LSTM" || op == "GRU" || op == "RNN") return recurrent(n, a), 1;
  if (op == "LayerNormalization") return layer_norm(n, a), 1;
  if (op == "ConvTranspose") return conv_transpose(n, a), 1;
  if (op == "Resize") return resize(n, a), 1;
  // opset-dependent CNN ops (import_cnn.cc)
  if (op == "Softmax" || op == "LogSoftmax") return softmax(n, a), 1;
  if (op == "Gelu") return gelu(n, a), 1;
  if (op == "Reciprocal") return reciprocal(n, a), 1;
  if (op == "Pad") return pad(n, a), 1;
  if (op == "Transpose") {
    want_inputs(n, 1, 1);
    Ref x = ref(n.input(0));
    std::vector<int64_t> perm = a.get_ints("perm", {});
    a.done();
    Perm p(perm.begin(), perm.end());
    for (int64_t q : perm) {
      if (q < 0 || q >= kMaxRank) fail("perm " + ints_str(perm));
    }
    check_perm(p, rank_of(x), where_ + ": perm");
    x.perm = compose(x.perm, p);
    if (n.output(0).empty() || refs_.count(n.output(0)) || inits_.count(n.output(0))) fail("redefines '" + n.output(0) + "'");
    refs_[n.output(0)] = x;  // no node: the permutation travels with the value (initializers included)
    return 1;
  }
  static const std::map<std::string, const char*> kUnary = {{"Sigmoid", "sigmoid"}, {"Tanh", "tanh"}, {"Exp", "exp"},
                                                            {"Log", "log"}, {"Sqrt", "sqrt"}, {"Abs", "abs"},
                                                            {"Softplus", "softplus"}, {"Relu", "relu"},
                                                            {"HardSwish", "hard_swish"}, {"Mish", "mish"}};
  if (auto it = kUnary.find(op); it != kUnary.end()) {
    want_inputs(n, 1, 1);
    a.done();
    unary(n, eltwise(it->second));
    return 1;
  }
  if (op == "LeakyRelu" || op == "Elu") {
    want_inputs(n, 1, 1);
    float alpha = a.get_float("alpha", op == "Elu" ? 1.f : 0.01f);
    a.done();
    unary(n, eltwise(op == "Elu" ? "elu" : "relu", alpha));
    return 1;
  }
  if (op == "Clip") {
    want_inputs(n, 3, 3);
    a.done();
    float lo = scalar_input(n.input(1), "Clip min"), hi = scalar_input(n.input(2), "Clip max");
    if (!(lo <= hi)) fail("Clip min exceeds max");
    unary(n, lo == 0.f && hi == 6.f ? eltwise("relu6") : eltwise("clip", lo, hi));
    return 1;
  }
  if (op == "HardSigmoid") {
    want_inputs(n, 1, 1);
    const float alpha = a.get_float("alpha", 0.2f), beta = a.get_float("beta", 0.5f);
    a.done();
    if (alpha == 1.f / 6.f && beta == 0.5f) {
      unary(n, eltwise("hard_sigmoid"));
    } else {  // max(0, min(1, alpha * x + beta)), Keras 2's form among others
      std::string scaled = n.output(0) + "/hard_sigmoid_affine";
      onnx::NodeProto first = n, second = n;
      first.set_output(0, scaled);
      second.set_input(0, scaled);
      unary(first, eltwise("affine", alpha, beta));
      unary(second, eltwise("clip", 0.f, 1.f));
    }
    return 1;
  }
  if (op == "Pow") {
    want_inputs(n, 2, 2);
    a.done();
    unary(n, eltwise("pow", 1.f, scalar_input(n.input(1), "Pow exponent")));
    return 1;
  }
  static const std::map<std::string, const char*> kBinary = {{"Add", "add"}, {"Sub", "sub"}, {"Mul", "mul"},
                                                             {"Div", "div"}, {"Max", "maximum"}, {"Min", "minimum"}};
  if (auto it = kBinary.find(op); it != kBinary.end()) {
    want_inputs(n, 2, 2);
    a.done();
    DType dt = dtype_of(ref(n.input(0)));
    binary(n, it->second, n.output(0), dt);
    return 1;
  }
  if (op == "MatMul") return a.done(), matmul(n), 1;
  if (op == "Slice") return a.done(), slice(n), 1;
  if (op == "Identity") {
    want_inputs(n, 1, 1);
    a.done();
    Ref x = ref(n.input(0));
    if (x.value < 0) x = Ref{materialize(x), "", identity_perm(rank_of(x))};
    define(n.output(0), x.value, x.perm);
    return 1;
  }
  if (op == "Cast") {
    want_inputs(n, 1, 1);
    DType to = kiln_dtype(static_cast<int32_t>(a.get_int("to", 0)), where_ + " Cast");
    a.done();
    Ref x = ref(n.input(0));
    DType from = dtype_of(x);
    if (x.value < 0 && is_floating(from) && is_floating(to)) return cast_constant(x, to, n.output(0)), 1;
    if (from == to) {
      if (x.value < 0) x = Ref{materialize(x), "", identity_perm(rank_of(x))};
      define(n.output(0), x.value, x.perm);
      return 1;
    }
    // A float -> integer Cast truncates as Kiln's cast does (where ONNX defines the result).
    bool narrowing_integers = !is_floating(from) && !is_floating(to) && to != DType::s32;
    if (narrowing_integers) fail("a narrowing integer Cast without Clip (Kiln saturates)");
    return cast_node(x, to, n.output(0)), 1;
  }
  if (op == "Expand") {
    want_inputs(n, 2, 2);
    a.done();
    int xv = materialize(ref(n.input(0)));
    std::vector<int64_t> shape = int64_input(n.input(1), "shape");
    for (int64_t d : shape) {
      if (d < 0) fail("Expand shape " + ints_str(shape));
    }
    if (shape.size() > kMaxRank) fail("Expand to rank " + std::to_string(shape.size()));
    const graph::Value& in = g_.values[xv];
    // Kiln's broadcast_to gives exactly the shape: each input dim is 1 or equal to it. Its
    // shape spells out the traced batch, so a batch dim stays symbolic (as trace records it)
    // and the graph runs at that batch only, as the original does.
    if (in.shape.size() > shape.size()) fail("Expand of " + shape_str(in.shape) + " to rank " + std::to_string(shape.size()));
    Shape s = shape;
    for (size_t i = 0; i < in.shape.size(); ++i) {
      int64_t d = in.shape[i], &t = s[s.size() - in.shape.size() + i];
      if (d == kBatch) t = kBatch;
      else if (d != 1 && d != t) fail("Expand of " + shape_str(in.shape) + " to " + ints_str(shape) + " (Kiln's broadcast_to gives exactly the shape)");
    }
    define(n.output(0), add_node(ops::Attrs("broadcast_to").set("shape", shape), {xv}, n.output(0), s, in.dtype), identity_perm(s.size()));
    return 1;
  }
  fail("op '" + op + "' is not one Kiln imports");
}


}  // namespace kiln::runtime_export::onnx_io
