#pragma once
#include <stdexcept>
#include <string>

#include "tensor/ops/attrs.h"
#include "tensor/tensor.h"

namespace kiln {

// a[..., M, K] @ b[..., K, N] -> [..., M, N], batch dimensions broadcast (numpy's matmul:
// a 1-D a is a row and a 1-D b a column, whose dimension the result drops). Transposed views
// (from transpose()) are passed to oneDNN as strides, without a copy. f32 and bf16 are
// differentiable; u8 or s8 @ s8 gives exact s32 sums (for quantized inference).
Tensor matmul(const Tensor& a, const Tensor& b);

enum class FusedActivation { none, relu };
inline const char* fused_activation_name(FusedActivation a) { return a == FusedActivation::relu ? "relu" : "none"; }
inline FusedActivation fused_activation_from_name(const std::string& name) {
  if (name == "none") return FusedActivation::none;
  if (name == "relu") return FusedActivation::relu;
  throw std::invalid_argument("unknown fused activation '" + name + "' (expected 'none' or 'relu')");
}

// Dense layer math: x[..., K] @ w[K, N] + bias[N] with an optional fused ReLU (a oneDNN
// post-op). bias may be undefined. bias may be f32 when x and w are bf16.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias,
              FusedActivation activation = FusedActivation::none);

namespace detail {
// scale * (a @ b) as one oneDNN matmul (the scale an output-scale attribute), in out_dtype
// (bf16 inputs may give f32), for ops built on matmuls (attention). Rank >= 2; batch
// dimensions broadcast; records nothing.
Tensor scaled_matmul(const Tensor& a, const Tensor& b, float scale, DType out_dtype, const char* op);
}  // namespace detail

}  // namespace kiln
