// softmax and log_softmax as oneDNN primitives over one axis.
#include "runtime_export/plan/builder.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::plan_detail {

bool Builder::softmax(const graph::Node& n) {
  int x = value_[n.inputs[0]];
  const Shape xs = t(x).shape;  // a copy: adding tensors moves them
  if (xs.empty() || !is_float(t(x).dtype)) return false;
  int axis = ops::parse_attrs<ops::AxisAttrs>(n.call).axis;
  if (axis < 0) axis += static_cast<int>(xs.size());
  if (axis < 0 || axis >= static_cast<int>(xs.size())) return false;  // the eager op names it
  int plain = p_.as_plain(x);
  // oneDNN's axis counts its own dims: 4-D tensors are {N, C, H, W}.
  int dnnl_axis = xs.size() == 4 ? (axis == 3 ? 1 : axis == 0 ? 0 : axis + 1) : axis;
  const memory::desc md = t(plain).desc;
  dnnl::primitive prim;
  dnnl::primitive_desc_base base;
  try {
    if (n.call.is(ops::OpKind::softmax)) {
      auto pd = dnnl::softmax_forward::primitive_desc(
          dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, md, dnnl_axis), onednn::default_attr(),
          onednn::cpu_engine());
      prim = dnnl::softmax_forward(pd);
      base = pd;
    } else {
      auto pd = dnnl::logsoftmax_forward::primitive_desc(
          dnnl::logsoftmax_forward::desc(dnnl::prop_kind::forward_inference, md, dnnl_axis), onednn::default_attr(),
          onednn::cpu_engine());
      prim = dnnl::logsoftmax_forward(pd);
      base = pd;
    }
  } catch (const dnnl::error&) {
    return false;
  }
  int dst = p_.new_slot(xs, t(plain).dtype, md);
  p_.add_primitive(n.call.op(), base, prim, {{DNNL_ARG_SRC, plain}, {DNNL_ARG_DST, dst}});
  value_[n.outputs[0]] = dst;
  return true;
}

}  // namespace kiln::runtime_export::plan_detail
