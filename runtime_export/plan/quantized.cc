// The int8 nodes: quantize_linear / dequantize_linear as reorders, qconv2d and qlinear as
// int8 oneDNN convolutions and matmuls with their epilogue as attributes.
#include "runtime_export/plan/builder.h"
#include "tensor/ops/conv_geometry.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::plan_detail {

// quantize_linear / dequantize_linear: one reorder that keeps the layout and changes the
// element type, with the scale (and zero point) as reorder attributes.
bool Builder::requantize(const graph::Node& n) {
  int x = value_[n.inputs[0]];
  const bool quantize = n.call.is(ops::OpKind::quantize_linear);
  float scale;
  int32_t zero_point;
  DType to = DType::f32;
  if (quantize) {
    const ops::QuantizeAttrs a = ops::parse_attrs_of<ops::OpKind::quantize_linear>(n.call);
    scale = a.scale, zero_point = a.zero_point, to = a.dtype;
  } else {
    const ops::DequantizeAttrs a = ops::parse_attrs_of<ops::OpKind::dequantize_linear>(n.call);
    scale = a.scale, zero_point = a.zero_point;
  }
  if (quantize ? !is_float(t(x).dtype) || !is_int8(to) : !is_int8(t(x).dtype)) return false;
  dnnl::primitive_attr attr = onednn::default_attr();
  attr.set_output_scales(0, {quantize ? 1.f / scale : scale});
  if (zero_point != 0) attr.set_zero_points(quantize ? DNNL_ARG_DST : DNNL_ARG_SRC, 0, {zero_point});
  memory::desc want = with_dtype(t(x).desc, to);
  dnnl::reorder::primitive_desc pd;
  try {
    pd = dnnl::reorder::primitive_desc(onednn::cpu_engine(), t(x).desc, onednn::cpu_engine(), want, attr);
  } catch (const dnnl::error&) {
    return false;
  }
  int dst = p_.new_slot(t(x).shape, to, want);
  p_.add_primitive(n.call.op(), pd, dnnl::reorder(pd), {{DNNL_ARG_FROM, x}, {DNNL_ARG_TO, dst}});
  value_[n.outputs[0]] = dst;
  return true;
}

// The int8 epilogue as oneDNN attributes: per-channel output scales x_scale * w_scale[c]
// (over out_scale when nothing follows), the residual as a sum post-op in its own int8 type,
// the activation as an eltwise post-op whose scale divides by out_scale. Bias is added to
// the s32 accumulator before the output scales, so it is passed divided by x * w scales.
dnnl::primitive_attr Builder::quantized_attr(const QuantizedEpilogue& q, DType residual_dtype, bool residual) {
  const bool act = q.activation != Epilogue::none;
  const float out = q.out_dtype == DType::f32 ? 1.f : q.out_scale;
  std::vector<float> scales;
  for (float w : q.w_scales) scales.push_back(q.x_scale * w / (act ? 1.f : out));
  dnnl::primitive_attr attr = onednn::default_attr();
  attr.set_output_scales(1 << 1, scales);
  dnnl::post_ops po;
  if (residual && q.out_dtype == DType::f32) po.append_sum(1.f);  // dequantized into dst already
  else if (residual) po.append_sum(q.residual_scale / (act ? 1.f : out), onednn::to_dnnl(residual_dtype));
  if (act) kiln::detail::append_eltwise_post_ops(po, epilogue_eltwise(q.activation), 0.f, 0.f, 1.f / out);
  attr.set_post_ops(po);
  return attr;
}

int Builder::quantized_bias(const graph::Node& n, const QuantizedEpilogue& q, const memory::dims& dims) {
  const int64_t channels = static_cast<int64_t>(q.w_scales.size());
  std::vector<float> b(channels, 0.f);
  if (n.inputs.size() > 2) {
    std::vector<float> v = t(value_[n.inputs[2]]).constant.to_vector();
    if (static_cast<int64_t>(v.size()) != channels) return -1;
    for (int64_t c = 0; c < channels; ++c) b[c] = v[c] / (q.x_scale * q.w_scales[c]);
  }
  PTensor bt{{channels}, DType::f32, memory::desc(dims, memory::data_type::f32, dims.size() == 1 ? tag::a : tag::ab),
             Home::constant};
  bt.constant = Tensor::from_vector(b, {channels});
  return p_.add_tensor(std::move(bt));
}

// The residual's bytes in the destination's buffer, seen as the residual's own type: the
// sum post-op reads them in that type, whatever the destination's.
int Builder::quantized_destination(int residual_value, const memory::desc& dst_desc, const Shape& shape, DType out_dtype,
                          float residual_scale) {
  int r = value_[residual_value];
  if (out_dtype == DType::f32) {
    // An f32 destination cannot sum int8 in place: the residual is dequantized into it.
    int dst = p_.new_slot(shape, DType::f32, dst_desc);
    dnnl::primitive_attr attr = onednn::default_attr();
    attr.set_output_scales(0, {residual_scale});
    auto pd = dnnl::reorder::primitive_desc(onednn::cpu_engine(), t(r).desc, onednn::cpu_engine(), dst_desc, attr);
    p_.add_primitive("residual dequantize", pd, dnnl::reorder(pd), {{DNNL_ARG_FROM, r}, {DNNL_ARG_TO, dst}});
    return dst;
  }
  memory::desc as_residual = with_dtype(dst_desc, t(r).dtype);
  int holder = destination_for_residual(residual_value, as_residual, shape, t(r).dtype);
  if (t(holder).dtype == out_dtype) return holder;
  aliased_.insert(holder);
  return p_.alias(holder, shape, dst_desc, out_dtype);
}

bool Builder::qconv(const graph::Node& n) {
  if (!constant(n.inputs[1]) || (n.inputs.size() > 2 && !constant(n.inputs[2]))) return false;
  const ops::QConv2dAttrs attrs = ops::parse_attrs_of<ops::OpKind::qconv2d>(n.call);
  const Conv2dAttrs& a = attrs.conv;
  const QuantizedEpilogue& q = attrs.q;
  int x = value_[n.inputs[0]];
  const Shape xs = t(x).shape;
  const Tensor w = t(value_[n.inputs[1]]).constant;
  if (xs.size() != 4 || w.ndim() != 4 || !is_int8(t(x).dtype) || w.dtype() != DType::s8) return false;
  const int64_t O = w.shape()[3];
  if (a.groups <= 0 || xs[3] % a.groups != 0 || w.shape()[2] != xs[3] / a.groups || O % a.groups != 0 || static_cast<int64_t>(q.w_scales.size()) != O) {
    return false;
  }
  const ConvGeometry g = conv_geometry(xs, w.shape(), a, "qconv2d", "x " + shape_str(xs) + ", kernel " + shape_str(w.shape()));
  const bool residual = n.inputs.size() > 3;
  DType rdt = residual ? t(value_[n.inputs[3]]).dtype : DType::s8;
  if (residual && !is_int8(rdt)) return false;
  memory::desc src_any(g.src_dims(), onednn::to_dnnl(t(x).dtype), tag::any),
      w_any(g.weight_dims(), memory::data_type::s8, tag::any), dst_any(g.dst_dims(), onednn::to_dnnl(q.out_dtype), tag::any),
      bias_md({O}, memory::data_type::f32, tag::a);
  dnnl::convolution_forward::primitive_desc pd;
  try {
    pd = dnnl::convolution_forward::primitive_desc(
        g.forward_desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_any, w_any, bias_md, dst_any),
        quantized_attr(q, rdt, residual), onednn::cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  int bias = quantized_bias(n, q, {O});
  if (bias < 0) return false;
  int src = p_.as_desc(x, pd.src_desc(), t(x).dtype);
  PTensor wt{w.shape(), DType::s8, pd.weights_desc(), Home::constant};
  wt.constant = weights_.get(n.inputs[1], w, g.user_weights_md(DType::s8), pd.weights_desc());
  int wid = p_.add_tensor(std::move(wt));
  Shape ys = g.dst_shape();
  int dst = residual ? quantized_destination(n.inputs[3], pd.dst_desc(), ys, q.out_dtype, q.residual_scale)
                     : p_.new_slot(ys, q.out_dtype, pd.dst_desc());
  p_.add_primitive("qconv2d", pd, dnnl::convolution_forward(pd),
                   {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wid}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, dst}}, true);
  value_[n.outputs[0]] = dst;
  return true;
}

bool Builder::qlinear(const graph::Node& n) {
  if (!constant(n.inputs[1]) || (n.inputs.size() > 2 && !constant(n.inputs[2]))) return false;
  const QuantizedEpilogue q = ops::parse_attrs_of<ops::OpKind::qlinear>(n.call).q;
  int x = value_[n.inputs[0]];
  const Shape xs = t(x).shape;
  const Tensor w = t(value_[n.inputs[1]]).constant;
  if (xs.empty() || w.ndim() != 2 || xs.back() != w.shape()[0] || !is_int8(t(x).dtype) || w.dtype() != DType::s8) {
    return false;
  }
  const int64_t K = w.shape()[0], Nout = w.shape()[1];
  if (static_cast<int64_t>(q.w_scales.size()) != Nout) return false;
  const int64_t M = numel(xs) / std::max<int64_t>(K, 1);
  const bool residual = n.inputs.size() > 3;
  DType rdt = residual ? t(value_[n.inputs[3]]).dtype : DType::s8;
  if (residual && !is_int8(rdt)) return false;
  memory::desc src_md({M, K}, onednn::to_dnnl(t(x).dtype), tag::ab), w_any({K, Nout}, memory::data_type::s8, tag::any),
      dst_md({M, Nout}, onednn::to_dnnl(q.out_dtype), tag::ab), bias_md({1, Nout}, memory::data_type::f32, tag::ab);
  dnnl::matmul::primitive_desc pd;
  try {
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_any, bias_md, dst_md), quantized_attr(q, rdt, residual),
                                      onednn::cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  int bias = quantized_bias(n, q, {1, Nout});
  if (bias < 0) return false;
  int plain = p_.as_plain(x);
  int src = p_.alias(plain, {M, K}, src_md);
  aliased_.insert(plain);
  PTensor wt{w.shape(), DType::s8, pd.weights_desc(), Home::constant};
  wt.constant = weights_.get(n.inputs[1], w, memory::desc({K, Nout}, memory::data_type::s8, tag::ab), pd.weights_desc());
  int wid = p_.add_tensor(std::move(wt));
  Shape ys = xs;
  ys.back() = Nout;
  int dst2d;
  if (residual) {
    int r = p_.as_plain(value_[n.inputs[3]]);
    value_[n.inputs[3]] = r;
    if (t(r).shape != Shape{M, Nout}) {
      r = p_.alias(r, {M, Nout}, memory::desc({M, Nout}, onednn::to_dnnl(rdt), tag::ab));
      aliased_.insert(p_.root(r));
      value_[n.inputs[3]] = r;
    }
    dst2d = quantized_destination(n.inputs[3], dst_md, {M, Nout}, q.out_dtype, q.residual_scale);
  } else {
    dst2d = p_.new_slot({M, Nout}, q.out_dtype, dst_md);
  }
  p_.add_primitive("qlinear", pd, dnnl::matmul(pd),
                   {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wid}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, dst2d}}, true);
  value_[n.outputs[0]] = unflattened(dst2d, ys);
  return true;
}

}  // namespace kiln::runtime_export::plan_detail
