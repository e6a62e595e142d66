// scaled_dot_product_attention without a mask: softmax(scale * q @ k^T) @ v as two oneDNN
// matmuls and a softmax, the eager op's own math (tensor/ops/attention.cc: f32 scores and
// softmax, weights in the inputs' dtype). q, k and v are read through their strides (the
// permuted views of the projections MultiHeadAttention makes), k^T is k with its last two
// strides swapped, and the result is written in the layout that makes the permute after it
// (back to [B, T, H, D]) plain, so that attention copies nothing.
#include <algorithm>

#include "runtime_export/plan/builder.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::plan_detail {

namespace {

// Strides that store `shape` so that permute(·, perm) of it is row-major.
Strides strides_for_permuted_reader(const Shape& shape, const std::vector<int>& perm) {
  Shape permuted(shape.size());
  for (size_t i = 0; i < perm.size(); ++i) permuted[i] = shape[perm[i]];
  const Strides row_major = contiguous_strides(permuted);
  Strides out(shape.size());
  for (size_t i = 0; i < perm.size(); ++i) out[perm[i]] = row_major[i];
  return out;
}

Strides with_last_two_swapped(Strides s) {
  std::swap(s[s.size() - 1], s[s.size() - 2]);
  return s;
}

}  // namespace

bool Builder::attention(const graph::Node& n) {
  // A mask or the causal flag: the eager op's masked softmax.
  if (n.inputs.size() != 3) return false;
  const ops::AttentionAttrs attrs = ops::parse_attrs_of<ops::OpKind::scaled_dot_product_attention>(n.call);
  if (attrs.causal) return false;
  int q = value_[n.inputs[0]], k = value_[n.inputs[1]], v = value_[n.inputs[2]];
  const DType dt = t(q).dtype;
  if (!is_float(dt) || t(k).dtype != dt || t(v).dtype != dt) return false;
  const Shape qs = t(q).shape, ks = t(k).shape, vs = t(v).shape;  // copies: adding tensors moves them
  const size_t rank = qs.size();
  if (rank < 2 || rank > DNNL_MAX_NDIMS || ks.size() != rank || vs.size() != rank) return false;
  if (!std::equal(qs.begin(), qs.end() - 2, ks.begin()) || !std::equal(qs.begin(), qs.end() - 2, vs.begin()) ||
      qs.back() != ks.back() || vs[rank - 2] != ks[rank - 2]) {
    return false;  // the eager op names the mismatch
  }
  for (const Shape* s : {&qs, &ks, &vs}) {
    if (std::count(s->begin(), s->end(), 0)) return false;  // empty: the eager op's zero-size rules
  }
  Shape scores_shape = qs;
  scores_shape.back() = ks[rank - 2];
  Shape out_shape = qs;
  out_shape.back() = vs.back();

  auto [qp, q_strides] = strided(q);
  auto [kp, k_strides] = strided(k);
  auto [vp, v_strides] = strided(v);
  const Shape kts = [&] {
    Shape s = ks;
    std::swap(s[rank - 1], s[rank - 2]);
    return s;
  }();
  const memory::desc q_md = matmul_desc(qs, q_strides, dt), kt_md = matmul_desc(kts, with_last_two_swapped(k_strides), dt),
                     v_md = matmul_desc(vs, v_strides, dt);
  const memory::desc scores_md = matmul_desc(scores_shape, contiguous_strides(scores_shape), DType::f32);
  const memory::desc weights_md = matmul_desc(scores_shape, contiguous_strides(scores_shape), dt);
  std::optional<std::vector<int>> reader_perm = sole_permute_reader(n.outputs[0]);
  const Strides out_strides = reader_perm && reader_perm->size() == rank
                                  ? strides_for_permuted_reader(out_shape, *reader_perm)
                                  : contiguous_strides(out_shape);
  const memory::desc out_md = matmul_desc(out_shape, out_strides, dt);
  const int64_t tk = scores_shape.back();
  const memory::desc rows_f32({numel(scores_shape) / tk, tk}, memory::data_type::f32, tag::ab);
  const memory::desc rows_dt({numel(scores_shape) / tk, tk}, onednn::to_dnnl(dt), tag::ab);

  dnnl::matmul::primitive_desc scores_pd, out_pd;
  dnnl::softmax_v2_forward::primitive_desc softmax_pd;
  try {
    dnnl::primitive_attr scaled = onednn::default_attr();
    scaled.set_output_scales(0, {static_cast<float>(attrs.scale)});
    scores_pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(q_md, kt_md, scores_md), scaled, onednn::cpu_engine());
    softmax_pd = dnnl::softmax_v2_forward::primitive_desc(
        dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::softmax_accurate, rows_f32,
                                       rows_dt, 1),
        onednn::default_attr(), onednn::cpu_engine());
    out_pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(weights_md, v_md, out_md), onednn::default_attr(),
                                          onednn::cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  auto operand = [&](int id, const Shape& shape, const memory::desc& md) {
    aliased_.insert(id);
    return p_.alias(id, shape, md);
  };
  const int q_in = operand(qp, qs, q_md), kt_in = operand(kp, kts, kt_md), v_in = operand(vp, vs, v_md);
  const int scores = p_.new_slot(scores_shape, DType::f32, scores_md);
  p_.add_primitive("attention scores", scores_pd, dnnl::matmul(scores_pd),
                   {{DNNL_ARG_SRC, q_in}, {DNNL_ARG_WEIGHTS, kt_in}, {DNNL_ARG_DST, scores}});
  // f32 weights overwrite the scores in place; bf16 ones need their own buffer.
  const int scores_rows = operand(scores, t(scores).shape, rows_f32);
  const int weights = dt == DType::f32 ? scores : p_.new_slot(scores_shape, dt, weights_md);
  const int weights_rows = dt == DType::f32 ? scores_rows : operand(weights, scores_shape, rows_dt);
  p_.add_primitive("attention softmax", softmax_pd, dnnl::softmax_v2_forward(softmax_pd),
                   {{DNNL_ARG_SRC, scores_rows}, {DNNL_ARG_DST, weights_rows}});
  const int weights_in = dt == DType::f32 ? operand(scores, scores_shape, weights_md) : weights;
  const int out = p_.new_slot(out_shape, dt, strided_desc(out_shape, out_strides, dt));
  p_.add_primitive("attention output", out_pd, dnnl::matmul(out_pd),
                   {{DNNL_ARG_SRC, weights_in}, {DNNL_ARG_WEIGHTS, v_in}, {DNNL_ARG_DST, operand(out, out_shape, out_md)}});
  value_[n.outputs[0]] = out;
  return true;
}

}  // namespace kiln::runtime_export::plan_detail
