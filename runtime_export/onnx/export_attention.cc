// scaled_dot_product_attention written out as the ONNX ops it fuses (opset 17 has no
// attention op): Transpose(k), MatMul, Mul(scale), the mask, Softmax, MatMul.
#include <numeric>

#include "runtime_export/onnx/exporter.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::onnx_io {

void Exporter::write_attention(const Node& n) {
  const ops::AttentionAttrs a = ops::parse_attrs_of<ops::OpKind::scaled_dot_product_attention>(n.call);
  const int q = n.inputs[0], k = n.inputs[1], v = n.inputs[2], y = n.outputs[0];
  const int r = rank(q);
  const DType dt = val(q).dtype;
  const DType const_dt = dt == DType::bf16 ? DType::f32 : dt;  // as scalar_in writes constants
  const std::string base = name_[y];
  std::vector<int64_t> perm(r);
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[r - 1], perm[r - 2]);
  std::string kt = tmp(base + "_key_t");
  set_attr(emit("Transpose", {native(k)}, {kt}), "perm", perm);
  std::string scores = tmp(base + "_scores");
  emit("MatMul", {native(q), kt}, {scores});
  std::string cur = tmp(base + "_scaled");
  emit("Mul", {scores, scalar_in(dt, a.scale)}, {cur});

  // Kept keys as 1/0: the boolean mask (> 0.5, as Kiln reads it) times the causal triangle.
  std::string keep;
  if (a.causal) {
    const int64_t tq = val(q).shape[r - 2], tk = val(k).shape[r - 2];
    Tensor tri = Tensor::zeros({tq, tk}, DType::f32);
    float* p = tri.data<float>();
    for (int64_t i = 0; i < tq; ++i) {
      for (int64_t j = 0; j <= i && j < tk; ++j) p[i * tk + j] = 1.f;
    }
    keep = initializer(tri, base + "_causal");
  }
  if (n.inputs.size() > 3 && a.mask_kind == AttentionMask::boolean) {
    const int m = n.inputs[3];
    std::string mask = native(m);
    if (!is_floating(val(m).dtype)) {
      std::string mf = tmp(base + "_mask_float");
      set_attr(emit("Cast", {mask}, {mf}), "to", int64_t{onnx_elem_type(const_dt)});
      mask = mf;
    }
    std::string gt = tmp(base + "_mask_bool");
    emit("Greater", {mask, scalar_in(is_floating(val(m).dtype) ? val(m).dtype : const_dt, 0.5)}, {gt});
    std::string kept = tmp(base + "_mask_keep");
    set_attr(emit("Cast", {gt}, {kept}), "to", int64_t{onnx_elem_type(const_dt)});
    if (keep.empty()) {
      keep = kept;
    } else {
      std::string both = tmp(base + "_keep");
      emit("Mul", {kept, keep}, {both});
      keep = both;
    }
  }
  if (!keep.empty()) {
    // scores * keep + (keep - 1) * 1e9: a kept score exactly, a masked one exactly -1e9 (its
    // weight 0 unless the whole row is masked; the Mul by keep after the Softmax zeroes that
    // row, as Kiln does).
    std::string kept_scores = tmp(base + "_kept"), minus = tmp(base + "_keep_m1"), bias = tmp(base + "_mask_bias");
    emit("Mul", {cur, keep}, {kept_scores});
    emit("Sub", {keep, scalar_in(dt, 1.0)}, {minus});
    emit("Mul", {minus, scalar_in(dt, 1e9)}, {bias});
    cur = tmp(base + "_masked");
    emit("Add", {kept_scores, bias}, {cur});
  }
  if (n.inputs.size() > 3 && a.mask_kind == AttentionMask::additive) {
    std::string added = tmp(base + "_biased");
    emit("Add", {cur, native(n.inputs[3])}, {added});
    cur = added;
  }
  std::string weights = tmp(base + "_weights");
  set_attr(emit("Softmax", {cur}, {weights}), "axis", int64_t{-1});
  if (!keep.empty()) {
    std::string kept_weights = tmp(base + "_kept_weights");
    emit("Mul", {weights, keep}, {kept_weights});
    weights = kept_weights;
  }
  emit("MatMul", {weights, native(v)}, {out(y, false)});
}

}  // namespace kiln::runtime_export::onnx_io
