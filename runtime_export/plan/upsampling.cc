// conv_transpose2d as one oneDNN deconvolution (weights packed once, activations in the
// layouts it picks) and resize2d as one oneDNN resampling.
#include "runtime_export/plan/builder.h"
#include "tensor/ops/conv_transpose_geometry.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::plan_detail {

bool Builder::conv_transpose(const graph::Node& n) {
  if (!constant(n.inputs[1]) || (n.inputs.size() > 2 && !constant(n.inputs[2]))) return false;
  const ConvTranspose2dAttrs a = ops::parse_attrs_of<ops::OpKind::conv_transpose2d>(n.call);
  int x = value_[n.inputs[0]];
  const Shape xs = t(x).shape;  // a copy: adding tensors moves them
  const Tensor w = t(value_[n.inputs[1]]).constant;
  if (xs.size() != 4 || w.ndim() != 4 || !is_float(t(x).dtype) || w.shape()[3] != xs[3]) return false;  // the eager op names it
  const DeconvGeometry g = deconv_geometry(xs, w.shape(), a, "conv_transpose2d", "x " + shape_str(xs) + ", kernel " + shape_str(w.shape()));
  if (numel(xs) == 0 || w.numel() == 0 || numel(g.dst_shape()) == 0) return false;  // oneDNN takes no empty operand
  const auto dt = onednn::to_dnnl(p_.float_dtype());
  memory::desc src_any(g.src_dims(), dt, tag::any), w_any(g.weight_dims(), dt, tag::any), dst_any(g.dst_dims(), dt, tag::any);
  const bool has_bias = n.inputs.size() > 2;
  memory::desc bias_md = has_bias ? memory::desc({g.o}, memory::data_type::f32, tag::a) : memory::desc();
  dnnl::deconvolution_forward::primitive_desc pd;
  try {
    pd = dnnl::deconvolution_forward::primitive_desc(
        g.forward_desc(dnnl::prop_kind::forward_inference, src_any, w_any, has_bias ? &bias_md : nullptr, dst_any),
        onednn::default_attr(), onednn::cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  int src = p_.as_desc(x, pd.src_desc(), p_.float_dtype());
  PTensor wt{w.shape(), p_.float_dtype(), pd.weights_desc(), Home::constant};
  wt.constant = weights_.get(n.inputs[1], w, g.user_weights_md(w.dtype()), pd.weights_desc());
  int wid = p_.add_tensor(std::move(wt));
  int dst = p_.new_slot(g.dst_shape(), p_.float_dtype(), pd.dst_desc());
  std::vector<std::pair<int, int>> bind{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wid}, {DNNL_ARG_DST, dst}};
  if (has_bias) bind.push_back({DNNL_ARG_BIAS, bias_tensor(n, g.o, {g.o})});
  p_.add_primitive("conv_transpose2d", pd, dnnl::deconvolution_forward(pd), bind);
  value_[n.outputs[0]] = dst;
  return true;
}

bool Builder::resize(const graph::Node& n) {
  int x = value_[n.inputs[0]];
  const Shape xs = t(x).shape;
  if (xs.size() != 4 || !is_float(t(x).dtype) || numel(xs) == 0) return false;
  const Resize2dAttrs a = ops::parse_attrs_of<ops::OpKind::resize2d>(n.call);
  const Shape ys{xs[0], a.size[0], a.size[1], xs[3]};
  auto alg = a.interpolation == Interpolation::nearest ? dnnl::algorithm::resampling_nearest
                                                       : dnnl::algorithm::resampling_linear;
  memory::desc dst_any({ys[0], ys[3], ys[1], ys[2]}, onednn::to_dnnl(t(x).dtype), tag::any);
  dnnl::resampling_forward::primitive_desc pd;
  try {
    // The source as the previous step left it (blocked after a convolution).
    pd = dnnl::resampling_forward::primitive_desc(
        dnnl::resampling_forward::desc(dnnl::prop_kind::forward_inference, alg, t(x).desc, dst_any),
        onednn::default_attr(), onednn::cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  int dst = p_.new_slot(ys, t(x).dtype, pd.dst_desc());
  p_.add_primitive("resize2d", pd, dnnl::resampling_forward(pd), {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, dst}});
  value_[n.outputs[0]] = dst;
  return true;
}

}  // namespace kiln::runtime_export::plan_detail
