// Float convolutions (conv2d, fused_conv2d) as one oneDNN convolution with post-ops.
#include "runtime_export/plan/builder.h"
#include "tensor/ops/conv_geometry.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::plan_detail {

bool Builder::conv(const graph::Node& n) {
  if (!constant(n.inputs[1]) || (n.inputs.size() > 2 && !constant(n.inputs[2]))) return false;
  const bool fused = n.call.is(ops::OpKind::fused_conv2d);
  Conv2dAttrs a;
  Epilogue act;
  if (fused) {
    const ops::FusedConv2dAttrs f = ops::parse_attrs_of<ops::OpKind::fused_conv2d>(n.call);
    a = f.conv;
    act = f.activation;
  } else {
    a = ops::parse_attrs_of<ops::OpKind::conv2d>(n.call);
    act = ops::epilogue_of(a.activation);
  }
  int x = value_[n.inputs[0]];
  const Shape xs = t(x).shape;  // a copy: adding tensors moves them
  const Tensor w = t(value_[n.inputs[1]]).constant;
  if (xs.size() != 4 || w.ndim() != 4 || !is_float(t(x).dtype)) return false;
  if (a.groups <= 0 || xs[3] % a.groups != 0 || w.shape()[2] != xs[3] / a.groups || w.shape()[3] % a.groups != 0) return false;  // the eager op names it
  const ConvGeometry g = conv_geometry(xs, w.shape(), a, "conv2d", "x " + shape_str(xs) + ", kernel " + shape_str(w.shape()));
  const auto dt = onednn::to_dnnl(p_.float_dtype());
  memory::desc src_any(g.src_dims(), dt, tag::any), w_any(g.weight_dims(), dt, tag::any), dst_any(g.dst_dims(), dt, tag::any);
  const bool has_bias = n.inputs.size() > 2;
  memory::desc bias_md = has_bias ? memory::desc({g.o}, memory::data_type::f32, tag::a) : memory::desc();
  const bool residual = n.inputs.size() > 3;
  dnnl::convolution_forward::primitive_desc pd;
  try {
    pd = dnnl::convolution_forward::primitive_desc(
        g.forward_desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_any, w_any, bias_md, dst_any),
        epilogue_attr(residual, act), onednn::cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  int src = p_.as_desc(x, pd.src_desc(), p_.float_dtype());
  PTensor wt{w.shape(), p_.float_dtype(), pd.weights_desc(), Home::constant};
  wt.constant = weights_.get(n.inputs[1], w, g.user_weights_md(w.dtype()), pd.weights_desc());
  int wid = p_.add_tensor(std::move(wt));
  Shape ys = g.dst_shape();
  int dst = residual ? destination_for_residual(n.inputs[3], pd.dst_desc(), ys, p_.float_dtype())
                     : p_.new_slot(ys, p_.float_dtype(), pd.dst_desc());
  std::vector<std::pair<int, int>> bind{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wid}, {DNNL_ARG_DST, dst}};
  if (has_bias) bind.push_back({DNNL_ARG_BIAS, bias_tensor(n, g.o, {g.o})});
  p_.add_primitive("conv2d", pd, dnnl::convolution_forward(pd), bind, fused || act != Epilogue::none);
  value_[n.outputs[0]] = dst;
  return true;
}

}  // namespace kiln::runtime_export::plan_detail
