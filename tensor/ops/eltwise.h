#pragma once
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
  linear,      // alpha * x + beta
  clip,        // clamp to [alpha, beta]
  pow,         // alpha * x ^ beta
};

Tensor eltwise(EltwiseKind kind, const Tensor& x, float alpha = 0.f, float beta = 0.f);
// Gradient of eltwise given the output gradient; `data` is the op's output y for sigmoid,
// tanh, exp and sqrt (which oneDNN differentiates from y) and its input x otherwise.
Tensor eltwise_backward(EltwiseKind kind, const Tensor& grad, const Tensor& data, float alpha = 0.f,
                        float beta = 0.f);
bool eltwise_backward_uses_output(EltwiseKind kind);

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
Tensor linear(const Tensor& x, float alpha, float beta);
Tensor clip(const Tensor& x, float low, float high);
Tensor pow(const Tensor& x, float exponent);

namespace detail {

// NaN handling shared by the ops that use oneDNN (tests/nan_test.cc holds the measurements):
// NaN goes through every op as in PyTorch, while NaN-free results stay bit for bit oneDNN's.

// Appends ReLU to a oneDNN post-op chain (conv, matmul, binary) so that NaN stays NaN.
// oneDNN's eltwise_relu with alpha 0 is max(x, 0), which turns NaN into 0 (so does alpha -0,
// which takes the same path). The chain elu(alpha 0), linear(1, 0) gives max(x, 0) bit for bit
// on every other value (elu keeps x > 0, maps x <= 0 and -inf to -0, and the + 0 makes it +0).
void append_relu_keeping_nan(dnnl::post_ops& po);

// Largest |value| of a dense f32 or bf16 tensor (0 when empty): NaN when any value is NaN,
// otherwise inf when any is infinite. One vectorized pass, parallel above a size threshold.
float max_abs(const Tensor& dense);
inline bool any_nan(const Tensor& dense) { float m = max_abs(dense); return m != m; }

}  // namespace detail
}  // namespace kiln
