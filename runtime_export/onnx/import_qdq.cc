// QDQ models: QuantizeLinear / DequantizeLinear around float ops, as ONNX Runtime's
// quantize_static (QuantFormat.QDQ) and Kiln's own int8 export write them.
//
// A DequantizeLinear of an initializer folds into a float initializer (so float ops read it as
// any other) and is remembered as int8 weights. A DequantizeLinear of computed int8 data stays
// pending: an int8 layer reads the int8 value itself, a float op gets a dequantize_linear node.
//  - Conv / Gemm / MatMul reading dequantized data and dequantized s8 weights (zero points 0,
//    one scale per output channel or per tensor) become qconv2d / qlinear with the file's scales.
//    Kiln's int8 layers take data with zero point 0; a nonzero data zero point folds into the
//    bias (-x_scale * zp * sum of the dequantized weights), which is exact only where no
//    padding reads the zero point, so a padded Conv on such data runs dequantized in f32.
//  - A QuantizeLinear with zero point 0 that is the only reader of such a layer's output
//    becomes the layer's int8 output (saturating: ONNX Runtime removes a Relu before a u8 zero
//    point 0 quantization, and the saturation is that Relu). Any other QuantizeLinear is a
//    quantize_linear node, zero point included.
//  - QuantizeLinear(DequantizeLinear(q)) with the same parameters is q.
//  - MaxPool and Flatten of dequantized data run on the int8 data (max and reshapes commute
//    with the monotonic dequantization), their result still pending dequantization.
//  - Everything else (Add, pooling, HardSwish, Mul, ...) runs in f32 on dequantized data, then
//    is quantized again where the file says so: the rounding points are the file's.
#include <cmath>
#include <functional>
#include <stdexcept>

#include "runtime_export/onnx/importer.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/quantized.h"

namespace kiln::runtime_export::onnx_io {
namespace {

bool is_int8(DType d) { return d == DType::u8 || d == DType::s8; }

}  // namespace

void Importer::note_qdq_nodes() {
  for (const auto& n : gp_.node()) {
    if (n.op_type() == "QuantizeLinear" || n.op_type() == "DequantizeLinear") saw_qdq_ = true;
  }
}

// Scale and zero point inputs of a QuantizeLinear / DequantizeLinear: the scales as floats,
// the zero points as integers in the quantized type (`q`, which an absent zero point leaves u8).
struct QuantParams {
  std::vector<float> scales;
  std::vector<int32_t> zero_points;
  DType q = DType::u8;
  bool per_tensor = true;
};

static QuantParams quant_params(const onnx::NodeProto& n, const std::map<std::string, const onnx::TensorProto*>& inits,
                                const std::function<const Tensor&(const std::string&)>& tensor,
                                const std::function<void(const std::string&)>& fail) {
  QuantParams p;
  if (!inits.count(n.input(1))) fail("scale '" + n.input(1) + "' must be an initializer");
  const Tensor& s = tensor(n.input(1));
  if (s.dtype() != DType::f32 || s.ndim() > 1 || s.numel() == 0) fail("scale '" + n.input(1) + "' is " + s.describe() + ", expected a FLOAT scalar or vector");
  p.scales = s.to_vector();
  p.per_tensor = s.numel() == 1;  // ONNX Runtime reads a one-element vector as per tensor too
  for (size_t i = 0; i < p.scales.size(); ++i) check_quant_scale(p.scales[i], "scale '" + n.input(1) + "'[" + std::to_string(i) + "]");
  p.zero_points.assign(p.scales.size(), 0);
  if (n.input_size() == 3 && !n.input(2).empty()) {
    if (!inits.count(n.input(2))) fail("zero point '" + n.input(2) + "' must be an initializer");
    const Tensor& z = tensor(n.input(2));
    if (z.numel() != s.numel()) fail("zero point " + z.describe() + " does not match scale " + s.describe());
    p.q = z.dtype();
    std::vector<float> v = z.to_vector();
    for (size_t i = 0; i < v.size(); ++i) p.zero_points[i] = static_cast<int32_t>(v[i]);
  }
  return p;
}

void Importer::dequantize(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 2, 3);
  const int64_t axis_attr = a.get_int("axis", 1);
  a.done();
  QuantParams p = quant_params(
      n, inits_, [&](const std::string& s) -> const Tensor& { return init_tensor(s); }, [&](const std::string& m) { fail(m); });
  const std::string& out = n.output(0);
  if (out.empty() || refs_.count(out) || inits_.count(out) || dequantized_.count(out)) fail("redefines '" + out + "'");
  if (inits_.count(n.input(0))) {
    const Tensor& q = init_tensor(n.input(0));
    if (q.dtype() != p.q) fail("data " + q.describe() + " and zero point of type " + dtype_name(p.q) + " differ");
    if (!is_int8(q.dtype()) && q.dtype() != DType::s32) fail("data " + q.describe() + " is not u8, s8 or s32");
    int64_t ax = -1;
    if (!p.per_tensor) {
      ax = axis(axis_attr, static_cast<int>(q.ndim()));
      if (q.shape()[ax] != static_cast<int64_t>(p.scales.size())) {
        fail(std::to_string(p.scales.size()) + " scales along axis " + std::to_string(ax) + " of " + q.describe());
      }
    }
    int64_t inner = 1;
    for (int64_t d = ax + 1; ax >= 0 && d < static_cast<int64_t>(q.ndim()); ++d) inner *= q.shape()[d];
    std::vector<float> v = q.to_vector();
    for (size_t i = 0; i < v.size(); ++i) {
      const size_t c = ax < 0 ? 0 : (i / inner) % p.scales.size();
      v[i] = static_cast<float>((static_cast<double>(v[i]) - p.zero_points[c]) * p.scales[c]);
    }
    Tensor f = Tensor::from_vector(v, q.shape());
    owned_constants_.emplace_back();
    to_tensor_proto(f, out, &owned_constants_.back());
    inits_[out] = &owned_constants_.back();
    init_tensors_[out] = f;
    quantized_constants_[out] = {n.input(0), p.scales, p.zero_points, ax};
    return;
  }
  if (!p.per_tensor) fail("a per-axis DequantizeLinear of computed data (Kiln quantizes activations per tensor)");
  Ref x = ref(n.input(0));
  if (dtype_of(x) != p.q) fail("data is " + std::string(dtype_name(dtype_of(x))) + " but its zero point is " + dtype_name(p.q));
  if (!is_int8(p.q)) fail("data is " + std::string(dtype_name(p.q)) + ", expected UINT8 or INT8");
  check_zero_point(p.zero_points[0], p.q, where_ + ": zero point");
  dequantized_[out] = {x, p.scales[0], p.zero_points[0]};
}

void Importer::materialize_dequantized(const std::string& name) {
  const Dequantized d = dequantized_.at(name);
  int v = d.q.value >= 0 ? d.q.value : materialize(d.q, identity_perm(rank_of(d.q)));
  Perm perm = d.q.value >= 0 ? d.q.perm : identity_perm(rank_of(d.q));
  const Shape shape = g_.values[v].shape;
  ops::Attrs call("dequantize_linear");
  call.set("scale", d.scale).set("zero_point", d.zero_point);
  int out = add_node(call, {v}, nhwc_name(name), shape, DType::f32);
  dequantize_source_[out] = v;
  refs_[name] = Ref{out, "", perm};
}

void Importer::quantize(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 2, 3);
  a.get_int("axis", 1);  // meaningful only with per-axis scales, refused below
  a.done();
  QuantParams p = quant_params(
      n, inits_, [&](const std::string& s) -> const Tensor& { return init_tensor(s); }, [&](const std::string& m) { fail(m); });
  if (!p.per_tensor) fail("a per-axis QuantizeLinear (Kiln quantizes activations per tensor)");
  if (!is_int8(p.q)) fail("quantizes to " + std::string(dtype_name(p.q)) + ", expected UINT8 or INT8");
  check_zero_point(p.zero_points[0], p.q, where_ + ": zero point");
  const float scale = p.scales[0];
  const int32_t zp = p.zero_points[0];
  const std::string& out = n.output(0);
  if (out.empty() || refs_.count(out) || inits_.count(out) || dequantized_.count(out)) fail("redefines '" + out + "'");
  // Quantizing what was just dequantized with the same parameters gives back the int8 data.
  auto pending = dequantized_.find(n.input(0));
  if (pending != dequantized_.end() && pending->second.scale == scale && pending->second.zero_point == zp &&
      dtype_of(pending->second.q) == p.q) {
    Ref q = pending->second.q;
    if (q.value < 0) q = Ref{materialize(q), "", identity_perm(rank_of(q))};
    refs_[out] = q;
    return;
  }
  Ref x = ref(n.input(0));
  if (dtype_of(x) != DType::f32) fail("input is " + std::string(dtype_name(dtype_of(x))) + ", expected FLOAT");
  auto layer = x.value >= 0 ? int8_layer_of_.find(x.value) : int8_layer_of_.end();
  if (layer != int8_layer_of_.end() && zp == 0 && readers(n.input(0)).size() == 1) {
    bool other_reader = false;
    for (const auto& node : g_.nodes) {
      for (int i : node.inputs) other_reader |= i == x.value;
    }
    if (!other_reader) {
      graph::Node& node = g_.nodes[layer->second];
      QuantizedEpilogue q = quantized_epilogue_from(node.call);
      q.out_scale = scale;
      q.out_dtype = p.q;
      ops::Attrs call = node.call.is(ops::OpKind::qconv2d)
                            ? qconv2d_attrs(ops::parse_attrs_of<ops::OpKind::qconv2d>(node.call).conv, q)
                            : qlinear_attrs(q);
      node.call = call;
      g_.values[x.value].dtype = p.q;
      int8_layer_of_.erase(layer);
      refs_[out] = x;
      return;
    }
  }
  int v = x.value >= 0 ? x.value : materialize(x, identity_perm(rank_of(x)));
  Perm perm = x.value >= 0 ? x.perm : identity_perm(rank_of(x));
  const Shape shape = g_.values[v].shape;
  ops::Attrs call("quantize_linear");
  call.set("scale", scale).set("zero_point", zp).set("dtype", dtype_name(p.q));
  define(out, add_node(call, {v}, nhwc_name(out), shape, p.q), perm);
}

// Conv / Gemm / MatMul whose data input is pending dequantization and whose weights are a
// dequantized s8 initializer: the float node is built as usual (its geometry checked there),
// then rewritten to read the int8 data and weights.
bool Importer::int8_layer(const onnx::NodeProto& n, NodeAttrs& a) {
  const std::string& op = n.op_type();
  if (n.input_size() < 2) return false;
  auto dx = dequantized_.find(n.input(0));
  auto dw = quantized_constants_.find(n.input(1));
  if (dx == dequantized_.end() || dw == quantized_constants_.end()) return false;
  const QuantizedConstant w = dw->second;
  const Dequantized x = dx->second;
  const Tensor w8 = init_tensor(w.q_init);
  if (w8.dtype() != DType::s8 || w8.ndim() < 2) return false;  // Kiln's int8 weights are s8: run in f32
  for (int32_t z : w.zero_points) {
    if (z != 0) return false;
  }
  // Which ONNX weight axis holds the output channels, and how the weights turn into Kiln's.
  int64_t out_axis;
  Perm to_kiln;
  if (op == "Conv") {
    if (w8.ndim() != 4) return false;
    out_axis = 0, to_kiln = kOihwToHwio;
    if (x.zero_point != 0) {
      for (const auto& attr : n.attribute()) {
        if (attr.name() != "pads") continue;
        for (int64_t pad : attr.ints()) {
          if (pad != 0) return false;  // the padding would read zero point 0: dequantized f32
        }
      }
    }
  } else if (op == "Gemm") {
    if (w8.ndim() != 2) return false;
    bool trans_b = false;
    for (const auto& attr : n.attribute()) {
      if (attr.name() == "transB") trans_b = attr.i() != 0;
      if (attr.name() == "transA" && attr.i() != 0) return false;
      if (attr.name() == "alpha" && attr.f() != 1.f) return false;
    }
    out_axis = trans_b ? 0 : 1, to_kiln = trans_b ? Perm{1, 0} : Perm{0, 1};
  } else if (op == "MatMul") {
    if (w8.ndim() != 2) return false;
    out_axis = 1, to_kiln = Perm{0, 1};
  } else {
    return false;
  }
  if (w.axis >= 0 && w.axis != out_axis) return false;  // per-input-channel scales: f32
  const int64_t channels = w8.shape()[out_axis];
  std::vector<float> w_scales = w.axis < 0 ? std::vector<float>(channels, w.scales[0]) : w.scales;

  const size_t first = g_.nodes.size();
  if (op == "Conv") conv(n, a);
  else if (op == "Gemm") gemm(n, a);
  else matmul(n);
  if (g_.nodes.size() == first) return true;
  const int x8 = int8_source_of_layer_input();
  if (x8 < 0) return true;  // ran in f32 as built
  graph::Node& node = g_.nodes.back();
  Tensor kiln_w8 = permuted_copy(w8, to_kiln);
  const Tensor kiln_w = g_.constant_for(node.inputs[1])->tensor;
  if (kiln_w8.shape() != kiln_w.shape()) fail("int8 weights " + kiln_w8.describe() + " do not match " + kiln_w.describe());
  const int wv = add_value(w.q_init, kiln_w8.shape(), DType::s8);
  g_.constants.push_back({wv, false, kiln_w8});

  const bool conv_node = node.call.is(ops::OpKind::conv2d);
  const int out = node.outputs[0];
  std::vector<int> inputs{x8, wv};
  if (node.inputs.size() > 2 || x.zero_point != 0) {
    std::vector<float> bias(channels, 0.f);
    if (node.inputs.size() > 2) bias = g_.constant_for(node.inputs[2])->tensor.to_vector();
    if (x.zero_point != 0) {
      // conv(s * (q - zp), w) = s * conv(q, w) - s * zp * sum(w) per output channel (no padding).
      std::vector<float> wf = kiln_w.to_vector();
      std::vector<double> sums(channels, 0.0);
      for (size_t i = 0; i < wf.size(); ++i) sums[i % channels] += wf[i];
      for (int64_t c = 0; c < channels; ++c) bias[c] -= static_cast<float>(double{x.scale} * x.zero_point * sums[c]);
    }
    Tensor b = Tensor::from_vector(bias, {channels});
    const int bv = add_value(g_.values[out].name + "/int8_bias", b.shape(), DType::f32);
    g_.constants.push_back({bv, false, b});
    inputs.push_back(bv);
  }
  QuantizedEpilogue q{.x_scale = x.scale, .w_scales = w_scales};
  check_quantized_epilogue(q, channels, where_);
  // Refetched: add_value above grows g_.values, not g_.nodes, but keep the reference honest.
  graph::Node& layer = g_.nodes.back();
  if (conv_node) {
    layer.call = qconv2d_attrs(ops::parse_attrs_of<ops::OpKind::conv2d>(layer.call), q);
  } else {
    layer.call = qlinear_attrs(q);
  }
  layer.inputs = inputs;
  int8_layer_of_[out] = g_.nodes.size() - 1;
  return true;
}

// The int8 value the layer just built (the last node) can read instead of its dequantized
// input, or -1. An NCHW file's first Conv reads its dequantized input through the transpose
// to NHWC: the transpose commutes with the dequantization, so it moves onto the int8 data.
int Importer::int8_source_of_layer_input() {
  const int x = g_.nodes.back().inputs[0];
  if (auto source = dequantize_source_.find(x); source != dequantize_source_.end()) return source->second;
  const graph::Node* permute = nullptr;
  for (auto it = g_.nodes.rbegin() + 1; it != g_.nodes.rend(); ++it) {  // the producer of x
    if (it->outputs.size() != 1 || it->outputs[0] != x) continue;
    if (it->call.is(ops::OpKind::permute)) permute = &*it;
    break;
  }
  if (!permute) return -1;
  auto source = dequantize_source_.find(permute->inputs[0]);
  if (source == dequantize_source_.end()) return -1;
  graph::Node layer = g_.nodes.back();
  g_.nodes.pop_back();
  const ops::Attrs call = permute->call;
  const int q = add_node(call, {source->second}, g_.values[x].name + "/int8", g_.values[x].shape, g_.values[source->second].dtype);
  g_.nodes.push_back(std::move(layer));
  return q;
}

// MaxPool and Flatten of dequantized data: built as float nodes, then moved onto the int8 data.
bool Importer::int8_passthrough(const onnx::NodeProto& n, NodeAttrs& a) {
  auto dx = dequantized_.find(n.input_size() ? n.input(0) : std::string());
  if (dx == dequantized_.end()) return false;
  const Dequantized x = dx->second;
  const size_t first = g_.nodes.size();
  if (n.op_type() == "MaxPool") pool(n, a);
  else flatten(n, a);
  graph::Node& node = g_.nodes.back();
  auto source = dequantize_source_.find(node.inputs[0]);
  if (g_.nodes.size() == first || source == dequantize_source_.end()) return true;
  node.inputs[0] = source->second;
  const int out = node.outputs[0];
  g_.values[out].dtype = g_.values[source->second].dtype;
  Ref r = refs_.at(n.output(0));
  refs_.erase(n.output(0));
  dequantized_[n.output(0)] = {r, x.scale, x.zero_point};
  return true;
}

}  // namespace kiln::runtime_export::onnx_io
