// Dense layers (linear, fused_linear) as one oneDNN matmul with post-ops.
#include "runtime_export/plan/builder.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::plan_detail {

bool Builder::linear(const graph::Node& n) {
  if (!constant(n.inputs[1]) || (n.inputs.size() > 2 && !constant(n.inputs[2]))) return false;
  const bool fused = n.call.is(ops::OpKind::fused_linear);
  const Epilogue act = fused ? ops::parse_attrs_of<ops::OpKind::fused_linear>(n.call).activation
                             : ops::epilogue_of(ops::parse_attrs_of<ops::OpKind::linear>(n.call).activation);
  int x = value_[n.inputs[0]];
  const Tensor w = t(value_[n.inputs[1]]).constant;
  const Shape xs = t(x).shape;
  if (xs.empty() || w.ndim() != 2 || xs.back() != w.shape()[0] || !is_float(t(x).dtype)) return false;
  Shape ys = xs;
  ys.back() = w.shape()[1];
  return dense_matmul(n, x, w, ys, act, fused || act != Epilogue::none, "");
}

bool Builder::dense_matmul(const graph::Node& n, int x, const Tensor& w, const Shape& ys, Epilogue act, bool post_ops,
                           const std::string& packed_variant) {
  const Shape xs = t(x).shape;  // a copy: adding tensors moves them
  const int64_t K = w.shape()[0], Nout = w.shape()[1];
  const int64_t M = numel(xs) / std::max<int64_t>(K, 1);
  const auto dt = onednn::to_dnnl(p_.float_dtype());
  memory::desc src_md({M, K}, dt, tag::ab), w_any({K, Nout}, dt, tag::any), dst_md({M, Nout}, dt, tag::ab);
  const bool has_bias = n.inputs.size() > 2;
  memory::desc bias_md = has_bias ? memory::desc({1, Nout}, memory::data_type::f32, tag::ab) : memory::desc();
  const bool residual = n.inputs.size() > 3;
  if (residual && numel(t(value_[n.inputs[3]]).shape) != M * Nout) return false;  // the eager op names it
  dnnl::matmul::primitive_desc pd;
  try {
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_any, bias_md, dst_md),
                                      epilogue_attr(residual, act), onednn::cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  int plain = p_.as_plain(x, p_.float_dtype());
  int src = p_.alias(plain, {M, K}, src_md);
  aliased_.insert(plain);
  PTensor wt{w.shape(), p_.float_dtype(), pd.weights_desc(), Home::constant};
  wt.constant = weights_.get(n.inputs[1], w, memory::desc({K, Nout}, onednn::to_dnnl(w.dtype()), tag::ab),
                             pd.weights_desc(), packed_variant);
  int wid = p_.add_tensor(std::move(wt));
  int dst2d;
  if (residual) {
    int r = p_.as_plain(value_[n.inputs[3]], p_.float_dtype());
    value_[n.inputs[3]] = r;
    int r2d = r;
    if (t(r).shape != Shape{M, Nout}) {
      r2d = p_.alias(r, {M, Nout}, dst_md);
      aliased_.insert(r);
    }
    if (buffer_free_after_this_node(r) && p_.root(r) != p_.root(src)) {
      // The sum post-op accumulates into the residual's own bytes.
      dst2d = r2d;
      p_.forget_reorders_of_root(p_.root(r));
    } else {
      dst2d = p_.new_slot({M, Nout}, p_.float_dtype(), dst_md);
      auto rpd = dnnl::reorder::primitive_desc(onednn::cpu_engine(), t(r2d).desc, onednn::cpu_engine(), dst_md,
                                               onednn::default_attr());
      p_.add_primitive("residual copy", rpd, dnnl::reorder(rpd), {{DNNL_ARG_FROM, r2d}, {DNNL_ARG_TO, dst2d}});
    }
  } else {
    dst2d = p_.new_slot({M, Nout}, p_.float_dtype(), dst_md);
  }
  std::vector<std::pair<int, int>> bind{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wid}, {DNNL_ARG_DST, dst2d}};
  if (has_bias) bind.push_back({DNNL_ARG_BIAS, bias_tensor(n, Nout, {1, Nout})});
  p_.add_primitive("linear", pd, dnnl::matmul(pd), bind, post_ops);
  value_[n.outputs[0]] = unflattened(dst2d, ys);
  return true;
}

// Whether a node may overwrite tensor id's bytes now: a plan buffer that no value read after
// this node (the graph's outputs included) lives in, whichever view of it that value is.
bool Builder::buffer_free_after_this_node(int id) const {
  const int root = p_.root(id);
  if (t(root).home != Home::slot || !plain_strides(t(id).shape, t(id).desc) ||
      plain_strides(t(id).shape, t(id).desc) != contiguous_strides(t(id).shape)) {
    return false;
  }
  for (size_t v = 0; v < value_.size(); ++v) {
    if (value_[v] >= 0 && last_read_[v] > node_ && p_.root(value_[v]) == root) return false;
  }
  return true;
}

// A dense layer's [M, N] result seen with the input's leading dimensions again ([..., N]).
int Builder::unflattened(int dst2d, const Shape& shape) {
  if (t(dst2d).shape == shape) return dst2d;
  aliased_.insert(dst2d);
  return p_.alias(dst2d, shape, plain_desc(shape, t(dst2d).dtype));
}

}  // namespace kiln::runtime_export::plan_detail
