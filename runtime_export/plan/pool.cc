// max_pool2d and avg_pool2d as a oneDNN pooling, f32, bf16 or int8.
#include "runtime_export/plan/builder.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::plan_detail {

bool Builder::pool(const graph::Node& n) {
  int x = value_[n.inputs[0]];
  const Shape xs = t(x).shape;  // a copy: adding tensors moves them
  if (xs.size() != 4 || !(is_float(t(x).dtype) || is_int8(t(x).dtype))) return false;
  const Pool2dAttrs a = ops::parse_attrs<Pool2dAttrs>(n.call);
  const int64_t N = xs[0], C = xs[3];
  const Pool2dPlan geometry = plan_pool2d(xs, a, n.call.op().c_str(), "x " + shape_str(xs));
  const SpatialPlan &ph = geometry.h, &pw = geometry.w;
  const int64_t sh = geometry.stride_h, sw = geometry.stride_w;
  bool is_max = n.call.is(ops::OpKind::max_pool2d);
  auto alg = is_max ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg_exclude_padding;
  memory::desc dst_any({N, C, ph.out, pw.out}, onednn::to_dnnl(t(x).dtype), tag::any);
  dnnl::pooling_forward::primitive_desc pd;
  try {
    pd = dnnl::pooling_forward::primitive_desc(
        dnnl::pooling_forward::desc(dnnl::prop_kind::forward_inference, alg, t(x).desc, dst_any, {sh, sw},
                                    {a.pool_size[0], a.pool_size[1]}, {ph.pad_before, pw.pad_before},
                                    {ph.pad_after, pw.pad_after}),
        onednn::default_attr(), onednn::cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  int dst = p_.new_slot({N, ph.out, pw.out, C}, t(x).dtype, pd.dst_desc());
  p_.add_primitive(n.call.op(), pd, dnnl::pooling_forward(pd), {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, dst}});
  value_[n.outputs[0]] = dst;
  return true;
}

}  // namespace kiln::runtime_export::plan_detail
