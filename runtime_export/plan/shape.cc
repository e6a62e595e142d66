// Reshapes (views, no step) and float casts (a reorder, or nothing).
#include "runtime_export/plan/builder.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::plan_detail {

bool Builder::reshape(const graph::Node& n) {
  Shape out = concrete(g_.values[n.outputs[0]].shape);
  int x = value_[n.inputs[0]];
  if (numel(out) != numel(t(x).shape)) return false;  // the eager op names the mismatch
  int plain = p_.as_plain(x);
  value_[n.outputs[0]] = p_.alias(plain, out, plain_desc(out, t(plain).dtype));
  aliased_.insert(plain);
  return true;
}

bool Builder::cast(const graph::Node& n) {
  int x = value_[n.inputs[0]];
  DType to = ops::parse_attrs_of<ops::OpKind::cast>(n.call).dtype;
  if (!is_float(to)) return false;  // integer casts truncate; oneDNN's reorder rounds
  DType target = p_.float_dtype();
  // oneDNN 2.6 has no s32 -> bf16 reorder (token ids into a bf16 plan): that cast runs eagerly.
  if (t(x).dtype == DType::s32 && target == DType::bf16) return false;
  if (t(x).dtype == target) {
    value_[n.outputs[0]] = x;
    return true;
  }
  value_[n.outputs[0]] = p_.as_plain(x, target);
  return true;
}

}  // namespace kiln::runtime_export::plan_detail
