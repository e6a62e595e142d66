#include "runtime_export/plan/builder.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::plan_detail {

// A BatchNorm the passes could not fold (after an input or an add): one primitive with the
// moving statistics, in whatever layout its input has.
bool Builder::batch_norm(const graph::Node& n) {
  for (int j = 1; j < 5; ++j) {
    if (!constant(n.inputs[j])) return false;
  }
  int x = value_[n.inputs[0]];
  const Shape xs = t(x).shape;  // a copy: adding tensors moves them
  if (xs.size() < 2 || !is_float(t(x).dtype)) return false;
  const int64_t C = xs.back();
  memory::desc md = t(x).desc;
  if (xs.size() != 4) {
    // oneDNN normalizes over dim 1: see [..., C] as {rows, C}.
    x = p_.as_plain(x);
    int rows = p_.alias(x, {numel(xs) / C, C}, memory::desc({numel(xs) / C, C}, onednn::to_dnnl(t(x).dtype), tag::ab));
    aliased_.insert(x);
    x = rows;
    md = t(x).desc;
  }
  auto flags = dnnl::normalization_flags::use_global_stats | dnnl::normalization_flags::use_scale |
               dnnl::normalization_flags::use_shift;
  const ops::BatchNormAttrs bn = ops::parse_attrs_of<ops::OpKind::batch_norm_inference>(n.call);
  if (bn.relu) flags = flags | dnnl::normalization_flags::fuse_norm_relu;
  dnnl::batch_normalization_forward::primitive_desc pd;
  try {
    pd = dnnl::batch_normalization_forward::primitive_desc(
        dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_inference, md,
                                                static_cast<float>(bn.epsilon), flags),
        onednn::default_attr(), onednn::cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  auto param = [&](int j) {
    const Tensor c = t(value_[n.inputs[j]]).constant;
    PTensor pt{{C}, DType::f32, memory::desc({C}, memory::data_type::f32, tag::a), Home::constant};
    pt.constant = (c.dtype() == DType::f32 ? c : kiln::cast(c, DType::f32)).clone_detached();
    return p_.add_tensor(std::move(pt));
  };
  int dst = p_.new_slot(t(x).shape, t(x).dtype, md);
  p_.add_primitive("batch_norm", pd, dnnl::batch_normalization_forward(pd),
                   {{DNNL_ARG_SRC, x}, {DNNL_ARG_SCALE, param(1)}, {DNNL_ARG_SHIFT, param(2)},
                    {DNNL_ARG_MEAN, param(3)}, {DNNL_ARG_VARIANCE, param(4)}, {DNNL_ARG_DST, dst}});
  value_[n.outputs[0]] = xs.size() == 4 ? dst : p_.alias(dst, xs, plain_desc(xs, t(dst).dtype));
  if (xs.size() != 4) aliased_.insert(dst);
  return true;
}

}  // namespace kiln::runtime_export::plan_detail
