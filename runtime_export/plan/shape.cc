// Reshapes and permutes (views, no step) and float casts (a reorder, or nothing).
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

// A permute is a strided view of its (plain) input: the reader that needs another layout
// reorders it once, with oneDNN's reorder (an NCHW image input of an imported ONNX file goes
// straight into the first convolution's layout instead of through an eager copy).
bool Builder::permute(const graph::Node& n) {
  const std::vector<int> perm = ops::parse_attrs_of<ops::OpKind::permute>(n.call).perm;
  int x = value_[n.inputs[0]];
  const Shape in = t(x).shape;  // a copy: adding tensors moves them
  if (in.empty() || perm.size() != in.size() || numel(in) == 0) return false;  // the eager op names it
  std::vector<bool> seen(in.size(), false);
  for (int a : perm) {
    if (a < 0 || a >= static_cast<int>(in.size()) || seen[a]) return false;
    seen[a] = true;
  }
  int plain = p_.as_plain(x);
  Shape out(in.size());
  Shape in_strides(in.size()), out_strides(in.size());
  int64_t stride = 1;
  for (size_t i = in.size(); i-- > 0;) {
    in_strides[i] = stride;
    stride *= in[i];
  }
  for (size_t j = 0; j < in.size(); ++j) {
    out[j] = in[perm[j]];
    out_strides[j] = in_strides[perm[j]];
  }
  // oneDNN sees a 4-D Kiln [N, H, W, C] as dims {N, C, H, W} (dnnl_dims).
  memory::dims strides = out.size() == 4 ? memory::dims{out_strides[0], out_strides[3], out_strides[1], out_strides[2]}
                                         : memory::dims(out_strides.begin(), out_strides.end());
  value_[n.outputs[0]] = p_.alias(plain, out, memory::desc(dnnl_dims(out), onednn::to_dnnl(t(plain).dtype), strides));
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
