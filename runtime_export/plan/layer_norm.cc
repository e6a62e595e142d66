#include "runtime_export/plan/builder.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::plan_detail {

// LayerNormalization: one oneDNN layer_normalization primitive over [rows, C] (the last axis),
// computing its statistics itself (forward_inference without global stats).
bool Builder::layer_norm(const graph::Node& n) {
  for (int j = 1; j < 3; ++j) {
    if (!constant(n.inputs[j])) return false;
  }
  int x = value_[n.inputs[0]];
  const Shape xs = t(x).shape;  // a copy: adding tensors moves them
  if (xs.empty() || !is_float(t(x).dtype) || numel(xs) == 0) return false;
  const int64_t C = xs.back();
  x = p_.as_plain(x);
  const memory::desc md({numel(xs) / C, C}, onednn::to_dnnl(t(x).dtype), tag::ab);
  int rows = p_.alias(x, {numel(xs) / C, C}, md);
  aliased_.insert(x);
  const ops::LayerNormAttrs ln = ops::parse_attrs_of<ops::OpKind::layer_norm>(n.call);
  dnnl::layer_normalization_forward::primitive_desc pd;
  try {
    pd = dnnl::layer_normalization_forward::primitive_desc(
        dnnl::layer_normalization_forward::desc(dnnl::prop_kind::forward_inference, md,
                                                static_cast<float>(ln.epsilon),
                                                dnnl::normalization_flags::use_scale |
                                                    dnnl::normalization_flags::use_shift),
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
  int dst = p_.new_slot(t(rows).shape, t(rows).dtype, md);
  p_.add_primitive("layer_norm", pd, dnnl::layer_normalization_forward(pd),
                   {{DNNL_ARG_SRC, rows}, {DNNL_ARG_SCALE, param(1)}, {DNNL_ARG_SHIFT, param(2)}, {DNNL_ARG_DST, dst}});
  value_[n.outputs[0]] = p_.alias(dst, xs, plain_desc(xs, t(dst).dtype));
  aliased_.insert(dst);
  return true;
}

}  // namespace kiln::runtime_export::plan_detail
