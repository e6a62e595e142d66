// The int8 nodes of quant::quantize_graph as QDQ ONNX: QuantizeLinear / DequantizeLinear
// around float Conv, Gemm and MatMul, the form ONNX Runtime's QDQ optimizer turns into its
// int8 kernels (QLinearConv, QGemm, ...). Weights are s8 with one scale per output channel
// (axis 0 of OIHW conv weights and of Gemm's transposed [N, K] weights, axis 1 of MatMul's
// [K, N]); bias is int32 with scale x_scale * w_scale, as ONNX Runtime's QDQ selectors want.
#include <cmath>

#include "runtime_export/onnx/exporter.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/quantized.h"

namespace kiln::runtime_export::onnx_io {
namespace {

Tensor zero_point(DType dtype, int64_t n = -1) {
  return n < 0 ? Tensor::zeros({}, dtype) : Tensor::zeros({n}, dtype);
}

}  // namespace

void Exporter::write_quantize(const Node& n) {
  const int x = n.inputs[0], y = n.outputs[0];
  const bool as_nchw = !const_[x] && rank(x) == 4 && !nchw_[x].empty();
  const bool quantize = n.call.is(ops::OpKind::quantize_linear);
  float scale;
  int64_t zp;
  DType q = val(x).dtype;
  if (quantize) {
    ops::QuantizeAttrs a = ops::parse_attrs_of<ops::OpKind::quantize_linear>(n.call);
    scale = a.scale, zp = a.zero_point, q = a.dtype;
  } else {
    ops::DequantizeAttrs a = ops::parse_attrs_of<ops::OpKind::dequantize_linear>(n.call);
    scale = a.scale, zp = a.zero_point;
  }
  if (q != DType::u8 && q != DType::s8) fail(std::string("int8 data must be u8 or s8, got ") + dtype_name(q));
  Tensor z = zero_point(q);
  store_element(z.raw_data(), q, 0, static_cast<double>(zp));
  emit(quantize ? "QuantizeLinear" : "DequantizeLinear",
       {in(x, as_nchw), initializer(Tensor::scalar(scale), name_[y] + "_scale"), initializer(z, name_[y] + "_zero_point")},
       {out(y, as_nchw)});
}

std::string Exporter::dequantized(int v, float scale, bool as_nchw) {
  std::string name = tmp(name_[v] + "_dq");
  DType dt = val(v).dtype;
  if (dt != DType::u8 && dt != DType::s8) fail("int8 input '" + val(v).name + "' is " + dtype_name(dt));
  emit("DequantizeLinear",
       {in(v, as_nchw), initializer(Tensor::scalar(scale), name_[v] + "_scale"), initializer(zero_point(dt), name_[v] + "_zero_point")},
       {name});
  return name;
}

std::string Exporter::dequantized_constant(const Tensor& q, const std::vector<float>& scales, int64_t axis,
                                           const std::string& base) {
  std::string name = tmp(base + "_dq");
  auto* node = emit("DequantizeLinear",
                    {initializer(q, base), initializer(Tensor::from_vector(scales, {static_cast<int64_t>(scales.size())}), base + "_scale"),
                     initializer(zero_point(q.dtype(), static_cast<int64_t>(scales.size())), base + "_zero_point")},
                    {name});
  set_attr(node, "axis", axis);
  return name;
}

// int32 bias in the accumulator's scale (x_scale * w_scale[c]), dequantized per channel.
std::string Exporter::quantized_bias(int b, const QuantizedEpilogue& q) {
  std::vector<float> v = const_[b]->tensor.to_vector();
  if (v.size() != q.w_scales.size()) fail("bias of " + std::to_string(v.size()) + " for " + std::to_string(q.w_scales.size()) + " channels");
  std::vector<int32_t> iv(v.size());
  std::vector<float> scales(v.size());
  for (size_t c = 0; c < v.size(); ++c) {
    scales[c] = q.x_scale * q.w_scales[c];
    iv[c] = static_cast<int32_t>(std::nearbyint(v[c] / scales[c]));
  }
  Tensor t = Tensor::from_int32(iv, {static_cast<int64_t>(iv.size())});
  std::string name = tmp(name_[b] + "_dq");
  auto* node = emit("DequantizeLinear",
                    {initializer(t, name_[b] + "_int32"), initializer(Tensor::from_vector(scales, {static_cast<int64_t>(scales.size())}), name_[b] + "_scale"),
                     initializer(zero_point(DType::s32, static_cast<int64_t>(iv.size())), name_[b] + "_zero_point")},
                    {name});
  set_attr(node, "axis", int64_t{0});
  return name;
}

void Exporter::write_quantized_layer(const Node& n) {
  const bool conv = n.call.is(ops::OpKind::qconv2d);
  const QuantizedEpilogue q = conv ? ops::parse_attrs_of<ops::OpKind::qconv2d>(n.call).q
                                   : ops::parse_attrs_of<ops::OpKind::qlinear>(n.call).q;
  const int x = n.inputs[0], w = n.inputs[1], y = n.outputs[0];
  if (!const_[w] || val(w).dtype != DType::s8) fail("int8 weights must be an s8 constant");
  if (n.inputs.size() > 2 && !const_[n.inputs[2]]) fail("the bias must be a constant");
  const Tensor& w8 = const_[w]->tensor;
  const bool residual = n.inputs.size() > 3;
  const bool int8_out = q.out_dtype != DType::f32;
  std::string last;
  if (conv) {
    std::vector<std::string> ins{dequantized(x, q.x_scale, true),
                                 dequantized_constant(permuted_copy(w8, kHwioToOihw), q.w_scales, 0, name_[w])};
    if (n.inputs.size() > 2) ins.push_back(quantized_bias(n.inputs[2], q));
    last = tmp(name_[y] + "_conv");
    emit_conv(ins, last, val(x).shape, w8.shape(), ops::parse_attrs_of<ops::OpKind::qconv2d>(n.call).conv);
  } else {
    if (w8.ndim() != 2) fail("qlinear weights must be [K, N]");
    last = tmp(name_[y] + "_linear");
    if (rank(x) == 2) {
      // Gemm with transB: the weights as [N, K], one scale per row (axis 0).
      std::vector<std::string> ins{dequantized(x, q.x_scale, false),
                                   dequantized_constant(permuted_copy(w8, {1, 0}), q.w_scales, 0, name_[w])};
      if (n.inputs.size() > 2) ins.push_back(quantized_bias(n.inputs[2], q));
      set_attr(emit("Gemm", ins, {last}), "transB", int64_t{1});
    } else {
      std::string mm = n.inputs.size() > 2 ? tmp(name_[y] + "_matmul") : last;
      emit("MatMul", {dequantized(x, q.x_scale, false), dequantized_constant(w8, q.w_scales, 1, name_[w])}, {mm});
      if (n.inputs.size() > 2) emit("Add", {mm, quantized_bias(n.inputs[2], q)}, {last});
    }
  }
  const bool as_nchw = conv;
  if (residual) {
    std::string sum = tmp(name_[y] + "_sum");
    emit("Add", {last, dequantized(n.inputs[3], q.residual_scale, as_nchw)}, {sum});
    last = sum;
  }
  if (q.activation != Epilogue::none) {
    std::string a = int8_out ? tmp(name_[y] + "_act") : out(y, as_nchw);
    write_epilogue(q.activation, last, a);
    last = a;
  } else if (!int8_out) {
    emit("Identity", {last}, {out(y, as_nchw)});
    return;
  }
  if (int8_out) {
    emit("QuantizeLinear",
         {last, initializer(Tensor::scalar(q.out_scale), name_[y] + "_scale"), initializer(zero_point(q.out_dtype), name_[y] + "_zero_point")},
         {out(y, as_nchw)});
  }
}

}  // namespace kiln::runtime_export::onnx_io
