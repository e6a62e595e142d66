// add / add_relu as a oneDNN binary and element-wise ops as a oneDNN eltwise.
#include "runtime_export/plan/builder.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::plan_detail {

bool Builder::add(const graph::Node& n) {
  int a = value_[n.inputs[0]], b = value_[n.inputs[1]];
  if (t(a).shape != t(b).shape || !is_float(t(a).dtype) || !is_float(t(b).dtype)) return false;
  b = p_.as_desc(b, t(a).desc, t(a).dtype);
  dnnl::primitive_attr attr = onednn::default_attr();
  if (n.call.is(ops::OpKind::add_relu)) {
    dnnl::post_ops po;
    po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(po);
  }
  dnnl::binary::primitive_desc pd;
  try {
    pd = dnnl::binary::primitive_desc(dnnl::binary::desc(dnnl::algorithm::binary_add, t(a).desc, t(b).desc, t(a).desc),
                                      attr, onednn::cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  int dst = p_.new_slot(t(a).shape, t(a).dtype, t(a).desc);
  p_.add_primitive(n.call.op(), pd, dnnl::binary(pd), {{DNNL_ARG_SRC_0, a}, {DNNL_ARG_SRC_1, b}, {DNNL_ARG_DST, dst}});
  value_[n.outputs[0]] = dst;
  return true;
}

// oneDNN's algorithm for an element-wise kind; undef where the plan runs the eager op.
dnnl::algorithm eltwise_algorithm(EltwiseKind kind) {
  switch (kind) {
    case EltwiseKind::relu: return dnnl::algorithm::eltwise_relu;
    case EltwiseKind::gelu_erf: return dnnl::algorithm::eltwise_gelu_erf;
    case EltwiseKind::gelu_tanh: return dnnl::algorithm::eltwise_gelu_tanh;
    case EltwiseKind::sigmoid: return dnnl::algorithm::eltwise_logistic;
    case EltwiseKind::tanh: return dnnl::algorithm::eltwise_tanh;
    case EltwiseKind::affine: return dnnl::algorithm::eltwise_linear;
    case EltwiseKind::elu: return dnnl::algorithm::eltwise_elu;
    case EltwiseKind::abs: return dnnl::algorithm::eltwise_abs;
    case EltwiseKind::square: return dnnl::algorithm::eltwise_square;
    case EltwiseKind::exp: return dnnl::algorithm::eltwise_exp;
    case EltwiseKind::swish: return dnnl::algorithm::eltwise_swish;
    case EltwiseKind::clip: return dnnl::algorithm::eltwise_clip;
    case EltwiseKind::relu6: return dnnl::algorithm::eltwise_clip_v2;
    case EltwiseKind::hard_swish: return dnnl::algorithm::eltwise_hardswish;
    case EltwiseKind::mish: return dnnl::algorithm::eltwise_mish;
    case EltwiseKind::hard_sigmoid:
    case EltwiseKind::log:
    case EltwiseKind::sqrt:
    case EltwiseKind::softplus:
    case EltwiseKind::pow:
      break;
  }
  return dnnl::algorithm::undef;
}

bool Builder::eltwise(const graph::Node& n) {
  const EltwiseKind kind = *ops::eltwise_kind_of(n.call.kind());
  const dnnl::algorithm algorithm = eltwise_algorithm(kind);
  if (algorithm == dnnl::algorithm::undef || n.inputs.size() != 1) return false;
  int x = value_[n.inputs[0]];
  if (!is_float(t(x).dtype)) return false;
  const ops::EltwiseAttrs a = ops::parse_attrs<ops::EltwiseAttrs>(n.call);
  const bool relu6 = kind == EltwiseKind::relu6;  // clip_v2 with Keras's fixed bounds
  const float alpha = relu6 ? 0.f : a.alpha, beta = relu6 ? 6.f : a.beta;
  dnnl::eltwise_forward::primitive_desc pd;
  try {
    pd = dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, algorithm, t(x).desc, alpha, beta),
        onednn::default_attr(), onednn::cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  int dst = p_.new_slot(t(x).shape, t(x).dtype, t(x).desc);
  p_.add_primitive(n.call.op(), pd, dnnl::eltwise_forward(pd), {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, dst}});
  value_[n.outputs[0]] = dst;
  return true;
}

}  // namespace kiln::runtime_export::plan_detail
