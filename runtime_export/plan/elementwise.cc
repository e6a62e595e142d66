// Binary ops (add, add_relu, sub, mul, maximum, minimum) as a oneDNN binary and element-wise
// ops as a oneDNN eltwise.
#include <string>
#include <utility>

#include "runtime_export/plan/builder.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::plan_detail {

namespace {

// Whether `small` broadcasts into `big` as oneDNN's binary broadcasts its second source: the
// same rank, each dimension equal or 1.
bool broadcasts_into(const Shape& big, const Shape& small) {
  if (big.size() != small.size()) return false;
  for (size_t i = 0; i < big.size(); ++i) {
    if (small[i] != big[i] && small[i] != 1) return false;
  }
  return true;
}

dnnl::algorithm binary_algorithm(ops::OpKind kind) {
  using K = ops::OpKind;
  switch (kind) {
    case K::add:
    case K::add_relu: return dnnl::algorithm::binary_add;
    case K::sub: return dnnl::algorithm::binary_sub;
    case K::mul: return dnnl::algorithm::binary_mul;
    case K::maximum: return dnnl::algorithm::binary_max;
    case K::minimum: return dnnl::algorithm::binary_min;
    default: return dnnl::algorithm::undef;
  }
}

}  // namespace

// add, add_relu, sub, mul, maximum, minimum as one oneDNN binary: same shapes, or the second
// operand broadcast into the first (the squeeze-excite scale [N, 1, 1, C] of an [N, H, W, C]
// activation, which stays in its blocked layout). A broadcast oneDNN has only its reference
// kernel for is left to the eager op.
bool Builder::binary(const graph::Node& n) {
  const dnnl::algorithm alg = binary_algorithm(n.call.kind());
  int a = value_[n.inputs[0]], b = value_[n.inputs[1]];
  if (alg == dnnl::algorithm::undef || !is_float(t(a).dtype) || !is_float(t(b).dtype)) return false;
  const bool commutative = !n.call.is(ops::OpKind::sub);
  if (t(a).shape != t(b).shape && !broadcasts_into(t(a).shape, t(b).shape)) {
    if (!commutative || !broadcasts_into(t(b).shape, t(a).shape)) return false;
    std::swap(a, b);
  }
  const bool same_shape = t(a).shape == t(b).shape;
  b = same_shape ? p_.as_desc(b, t(a).desc, t(a).dtype) : p_.as_plain(b, t(a).dtype);
  dnnl::primitive_attr attr = onednn::default_attr();
  if (n.call.is(ops::OpKind::add_relu)) {
    dnnl::post_ops po;
    po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(po);
  }
  dnnl::binary::primitive_desc pd;
  try {
    pd = dnnl::binary::primitive_desc(dnnl::binary::desc(alg, t(a).desc, t(b).desc, t(a).desc), attr, onednn::cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  if (!same_shape && std::string(pd.impl_info_str()).rfind("ref", 0) == 0) return false;
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
