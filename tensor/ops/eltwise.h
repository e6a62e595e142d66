#pragma once
#include <vector>

#include "tensor/ops/attrs.h"
#include "tensor/tensor.h"

namespace dnnl {
struct post_ops;
}

namespace kiln {

enum class EltwiseKind {
  relu,        // alpha: negative slope (leaky relu)
  gelu_tanh,
  gelu_erf,
  sigmoid,
  tanh,
  exp,
  log,
  sqrt,
  square,
  abs,
  elu,         // alpha
  softplus,    // log(1 + exp(x))
  swish,       // x * sigmoid(alpha * x)
  affine,      // alpha * x + beta ("linear" is the Dense op)
  clip,        // clamp to [alpha, beta]
  pow,         // alpha * x ^ beta
  // Keras 3's hard activations and mish; none takes alpha or beta (both must be 0).
  relu6,         // min(max(x, 0), 6)
  hard_sigmoid,  // relu6(x + 3) / 6
  hard_swish,    // x * relu6(x + 3) / 6 (Keras's hard_silu)
  mish,          // x * tanh(softplus(x))
};

Tensor eltwise(EltwiseKind kind, const Tensor& x, float alpha = 0.f, float beta = 0.f);
// The registered op kind of each EltwiseKind ("relu", "sigmoid", "affine", ...),
// every kind, and the attributes an eltwise call records (alpha, beta).
const char* eltwise_name(EltwiseKind kind);
std::vector<EltwiseKind> all_eltwise_kinds();
ops::Attrs eltwise_attrs(EltwiseKind kind, float alpha, float beta);
// Gradient of eltwise given the output gradient; `data` is the op's output y for sigmoid,
// tanh, exp and sqrt (which oneDNN differentiates from y) and its input x otherwise.
Tensor eltwise_backward(EltwiseKind kind, const Tensor& grad, const Tensor& data, float alpha = 0.f,
                        float beta = 0.f);
bool eltwise_backward_uses_output(EltwiseKind kind);
// relu6, hard_sigmoid, hard_swish, mish: their alpha and beta must be 0.
bool eltwise_takes_no_parameters(EltwiseKind kind);

Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, float negative_slope = 0.2f);
Tensor gelu(const Tensor& x, bool approximate = false);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor elu(const Tensor& x, float alpha = 1.0f);
Tensor softplus(const Tensor& x);
Tensor swish(const Tensor& x);
Tensor affine(const Tensor& x, float alpha, float beta);  // alpha * x + beta (op kind "affine")
Tensor clip(const Tensor& x, float low, float high);
Tensor pow(const Tensor& x, float exponent);
Tensor relu6(const Tensor& x);
Tensor hard_sigmoid(const Tensor& x);
Tensor hard_swish(const Tensor& x);
Tensor mish(const Tensor& x);

namespace detail {

// Appends oneDNN eltwise post-ops computing `kind` (alpha, beta) to a chain, the last one
// scaled by `scale`; false (and nothing appended) when oneDNN 2.6 has no form for it. NaN
// handling is oneDNN's own (see below): callers that promise NaN propagation check first.
bool append_eltwise_post_ops(dnnl::post_ops& po, EltwiseKind kind, float alpha, float beta, float scale = 1.f);

// NaN handling shared by the ops built on oneDNN (tests/nan_test.cc lists what oneDNN 2.6 does
// with NaN): NaN goes through every op as in PyTorch, and NaN-free results stay bit for bit
// what oneDNN gives.

// How a conv, matmul or binary primitive applies a fused ReLU. oneDNN's own relu post-op
// (alpha 0, and alpha -0 alike) is max(x, 0), which turns NaN into 0.
enum class ReluFusion {
  none,
  post_op,              // oneDNN's relu: exact when no pre-activation can be NaN (checked by a scan)
  nan_keeping_post_op,  // elu(alpha 0) then linear(1, 0): max(x, 0) bit for bit, NaN stays NaN
  unfused,              // NaN possible and the scan already paid: plain primitive, then relu()
};

// Chooses for z = (sum of `terms` products src * weights) + bias (conv, matmul; bias may be
// undefined), or for z = src + weights when terms is 0 (binary add), with `outputs` elements.
// The NaN-keeping chain costs some exp work per output; when reading the inputs once is
// cheaper, they are scanned instead: finite inputs whose products cannot overflow cannot make
// a NaN, so oneDNN's relu is exact (post_op); otherwise the answer is unfused.
ReluFusion choose_relu_fusion(const Tensor& src, const Tensor& weights, const Tensor& bias, int64_t terms,
                              int64_t outputs);
// Appends the ReLU of a post_op or nan_keeping_post_op choice to a post-op chain.
void append_relu(dnnl::post_ops& po, ReluFusion fusion);

// relu(a + b) into out for dense f32 or bf16 tensors of one shape (residual connections): one
// vectorized pass with oneDNN's add + relu post-op bits on NaN-free input, keeping NaN.
void add_relu_same_shape(const Tensor& a, const Tensor& b, Tensor& out);

// Largest |value| of a dense f32 or bf16 tensor (0 when empty): NaN when any value is NaN,
// otherwise inf when any is infinite. One vectorized pass, parallel above a size threshold.
float max_abs(const Tensor& dense);
inline bool any_nan(const Tensor& dense) { float m = max_abs(dense); return m != m; }

}  // namespace detail
}  // namespace kiln
