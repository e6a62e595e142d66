#include "tensor/ops/eltwise.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "autograd/recorder.h"
#include "tensor/ops/binary.h"
#include "tensor/ops/common.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"

namespace kiln {
namespace {

struct KindInfo {
  const char* name;
  dnnl::algorithm alg;
};

KindInfo info(EltwiseKind kind) {
  using A = dnnl::algorithm;
  switch (kind) {
    case EltwiseKind::relu: return {"relu", A::eltwise_relu};
    case EltwiseKind::gelu_tanh: return {"gelu_tanh", A::eltwise_gelu_tanh};
    case EltwiseKind::gelu_erf: return {"gelu_erf", A::eltwise_gelu_erf};
    case EltwiseKind::sigmoid: return {"sigmoid", A::eltwise_logistic_use_dst_for_bwd};
    case EltwiseKind::tanh: return {"tanh", A::eltwise_tanh_use_dst_for_bwd};
    case EltwiseKind::exp: return {"exp", A::eltwise_exp_use_dst_for_bwd};
    case EltwiseKind::log: return {"log", A::eltwise_log};
    case EltwiseKind::sqrt: return {"sqrt", A::eltwise_sqrt_use_dst_for_bwd};
    case EltwiseKind::square: return {"square", A::eltwise_square};
    case EltwiseKind::abs: return {"abs", A::eltwise_abs};
    case EltwiseKind::elu: return {"elu", A::eltwise_elu};
    case EltwiseKind::softplus: return {"softplus", A::eltwise_soft_relu};
    case EltwiseKind::swish: return {"swish", A::eltwise_swish};
    case EltwiseKind::linear: return {"linear", A::eltwise_linear};
    case EltwiseKind::clip: return {"clip", A::eltwise_clip_v2};
    case EltwiseKind::pow: return {"pow", A::eltwise_pow};
  }
  throw std::invalid_argument("eltwise: unknown kind");
}

dnnl::eltwise_forward::primitive_desc forward_pd(const KindInfo& k, const dnnl::memory::desc& md, float alpha,
                                                 float beta) {
  return dnnl::eltwise_forward::primitive_desc(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, k.alg, md, alpha, beta),
      onednn::default_attr(), onednn::cpu_engine());
}

// NaN-keeping kernels of our own, used where oneDNN 2.6 drops NaN (see eltwise.h): its relu
// (alpha 0) and clip_v2 are max/min instructions, which return the non-NaN operand.
// Each matches oneDNN's result bit for bit on every non-NaN input.
constexpr int64_t kParallelThreshold = 1 << 16;

// Negative or -0 (not NaN) for the raw bits of a bf16; +0 gives the same results either way.
inline bool bf16_negative(uint16_t b) { return static_cast<uint16_t>(b - 0x8000u) <= 0x7f80u; }
inline bool bf16_nan(uint16_t b) { return (b & 0x7fffu) > 0x7f80u; }

// relu: x <= 0 ? +0 : x, which keeps NaN (oneDNN: max(x, 0)).
void relu_forward(const Tensor& src, Tensor& out) {
  const int64_t n = src.numel();
  if (src.dtype() == DType::f32) {
    const float* x = src.data<float>();
    float* y = out.data<float>();
#pragma omp parallel for simd if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] <= 0.f ? 0.f : x[i];
  } else {
    const uint16_t* x = static_cast<const uint16_t*>(src.raw_data());
    uint16_t* y = static_cast<uint16_t*>(out.raw_data());
#pragma omp parallel for simd if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) y[i] = bf16_negative(x[i]) ? 0 : x[i];
  }
}

// PyTorch's threshold_backward: x <= 0 ? 0 : grad, so a NaN x passes the gradient on and a
// NaN gradient stops at x <= 0. The zero takes grad's sign, as oneDNN's grad * 0 does.
void relu_backward(const Tensor& grad, const Tensor& data, Tensor& out) {
  const int64_t n = grad.numel();
  if (grad.dtype() == DType::f32) {
    const float* g = grad.data<float>();
    const float* x = data.data<float>();
    float* dx = out.data<float>();
#pragma omp parallel for simd if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) dx[i] = x[i] <= 0.f ? std::copysign(0.f, g[i]) : g[i];
  } else {
    const uint16_t* g = static_cast<const uint16_t*>(grad.raw_data());
    const uint16_t* x = static_cast<const uint16_t*>(data.raw_data());
    uint16_t* dx = static_cast<uint16_t*>(out.raw_data());
#pragma omp parallel for simd if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) dx[i] = bf16_negative(x[i]) || x[i] == 0 ? g[i] & 0x8000u : g[i];
  }
}

// clip: NaN stays NaN, others min(max(x, low), high) with oneDNN's operand order (so -0 and
// +0 come out as before); bf16 results round low and high as oneDNN's f32 -> bf16 store does.
void clip_forward(const Tensor& src, Tensor& out, float low, float high) {
  const int64_t n = src.numel();
  if (src.dtype() == DType::f32) {
    const float* x = src.data<float>();
    float* y = out.data<float>();
#pragma omp parallel for simd if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      float t = x[i] > low ? x[i] : low;
      t = t < high ? t : high;
      y[i] = x[i] != x[i] ? x[i] : t;
    }
  } else {
    const uint16_t* x = static_cast<const uint16_t*>(src.raw_data());
    uint16_t* y = static_cast<uint16_t*>(out.raw_data());
    const uint16_t low_bits = bf16::round_from_float(low), high_bits = bf16::round_from_float(high);
#pragma omp parallel for simd if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      uint32_t u = static_cast<uint32_t>(x[i]) << 16;
      float v;
      std::memcpy(&v, &u, sizeof v);
      bool above_low = v > low;
      float t = above_low ? v : low;
      uint16_t r = t < high ? (above_low ? x[i] : low_bits) : high_bits;
      y[i] = bf16_nan(x[i]) ? x[i] : r;
    }
  }
}

// Copies src's NaNs into out (oneDNN's exp clamps its input, so exp(NaN) came out inf).
void restore_nan(const Tensor& src, Tensor& out) {
  if (!detail::any_nan(src)) return;
  const int64_t n = src.numel();
  if (src.dtype() == DType::f32) {
    const float* x = src.data<float>();
    float* y = out.data<float>();
    for (int64_t i = 0; i < n; ++i) {
      if (x[i] != x[i]) y[i] = x[i];
    }
  } else {
    const uint16_t* x = static_cast<const uint16_t*>(src.raw_data());
    uint16_t* y = static_cast<uint16_t*>(out.raw_data());
    for (int64_t i = 0; i < n; ++i) {
      if (bf16_nan(x[i])) y[i] = x[i];
    }
  }
}

}  // namespace

namespace detail {

void append_relu_keeping_nan(dnnl::post_ops& po) {
  po.append_eltwise(1.f, dnnl::algorithm::eltwise_elu, 0.f, 0.f);
  po.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, 1.f, 0.f);
}

float max_abs(const Tensor& t) {
  check_floating(t, "max_abs");
  if (!t.is_contiguous()) throw std::invalid_argument("max_abs: expected a dense tensor, got " + t.describe());
  const int64_t n = t.numel();
  uint32_t m = 0;  // |x| as raw bits: unsigned order is float order, with inf and then NaN above
  if (t.dtype() == DType::f32) {
    const uint32_t* p = static_cast<const uint32_t*>(t.raw_data());
#pragma omp parallel for simd reduction(max : m) if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      uint32_t a = p[i] & 0x7fffffffu;
      m = a > m ? a : m;
    }
  } else {
    const uint16_t* p = static_cast<const uint16_t*>(t.raw_data());
    uint16_t m16 = 0;
#pragma omp parallel for simd reduction(max : m16) if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      uint16_t a = p[i] & 0x7fffu;
      m16 = a > m16 ? a : m16;
    }
    m = static_cast<uint32_t>(m16) << 16;
  }
  float f;
  std::memcpy(&f, &m, sizeof f);
  return f;
}

}  // namespace detail

bool eltwise_backward_uses_output(EltwiseKind kind) {
  return kind == EltwiseKind::sigmoid || kind == EltwiseKind::tanh || kind == EltwiseKind::exp ||
         kind == EltwiseKind::sqrt;
}

Tensor eltwise(EltwiseKind kind, const Tensor& x, float alpha, float beta) {
  KindInfo k = info(kind);
  detail::check_floating(x, k.name);
  Tensor src = detail::dense(x);
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  if (x.numel() > 0 && kind == EltwiseKind::relu && alpha == 0.f) {
    relu_forward(src, out);
  } else if (x.numel() > 0 && kind == EltwiseKind::clip) {
    clip_forward(src, out, alpha, beta);
  } else if (x.numel() > 0) {
    auto md = onednn::desc_of(src);
    auto prim = onednn::cached<dnnl::eltwise_forward>(
        k.name, onednn::KeyBuilder("eltwise").add(k.name).add(src).add(alpha).add(beta),
        [&] { return forward_pd(k, md, alpha, beta); });
    onednn::execute(k.name, prim.primitive,
                    {{DNNL_ARG_SRC, onednn::memory_of(src, md)}, {DNNL_ARG_DST, onednn::memory_of(out, md)}});
    if (kind == EltwiseKind::exp) restore_nan(src, out);
  }
  if (autograd::should_record({&x})) {
    if (kind == EltwiseKind::linear) {
      autograd::record(k.name, {x}, {out}, [alpha](const std::vector<Tensor>& g) {
        return std::vector<Tensor>{g[0] * alpha};
      });
    } else if (kind == EltwiseKind::pow) {
      // d/dx alpha*x^beta = alpha*beta*x^(beta-1), kept differentiable for higher orders.
      autograd::record(k.name, {x}, {out}, [x, alpha, beta](const std::vector<Tensor>& g) {
        return std::vector<Tensor>{g[0] * eltwise(EltwiseKind::pow, x, alpha * beta, beta - 1.0f)};
      });
    } else {
      Tensor data = eltwise_backward_uses_output(kind) ? out : x;
      autograd::record(k.name, {x}, {out}, [kind, data, alpha, beta](const std::vector<Tensor>& g) {
        return std::vector<Tensor>{eltwise_backward(kind, g[0], data, alpha, beta)};
      });
    }
  }
  return out;
}

Tensor eltwise_backward(EltwiseKind kind, const Tensor& grad, const Tensor& data, float alpha, float beta) {
  KindInfo k = info(kind);
  std::string op = std::string(k.name) + "_backward";
  detail::check_floating(grad, op.c_str());
  detail::check_same_dtype(grad, data, op.c_str());
  if (grad.shape() != data.shape()) {
    throw std::invalid_argument(op + ": gradient " + grad.describe() + " does not match data " + data.describe());
  }
  Tensor g = detail::dense(grad), d = detail::dense(data);
  Tensor out = Tensor::empty(grad.shape(), grad.dtype());
  if (out.numel() == 0) return out;
  if (kind == EltwiseKind::relu && alpha == 0.f) {
    relu_backward(g, d, out);
    autograd::record_without_second_order("eltwise_backward", {grad, data}, {out});
    return out;
  }
  auto md = onednn::desc_of(d);
  auto prim = onednn::cached<dnnl::eltwise_backward>(
      op, onednn::KeyBuilder("eltwise_bwd").add(k.name).add(d).add(alpha).add(beta), [&] {
        auto hint = forward_pd(k, md, alpha, beta);
        return dnnl::eltwise_backward::primitive_desc(dnnl::eltwise_backward::desc(k.alg, md, md, alpha, beta),
                                                      onednn::default_attr(), onednn::cpu_engine(), hint);
      });
  int data_arg = eltwise_backward_uses_output(kind) ? DNNL_ARG_DST : DNNL_ARG_SRC;
  onednn::execute(op.c_str(), prim.primitive,
                  {{data_arg, onednn::memory_of(d, md)},
                   {DNNL_ARG_DIFF_DST, onednn::memory_of(g, md)},
                   {DNNL_ARG_DIFF_SRC, onednn::memory_of(out, md)}});
  autograd::record_without_second_order("eltwise_backward", {grad, data}, {out});
  return out;
}

Tensor relu(const Tensor& x) { return eltwise(EltwiseKind::relu, x); }
Tensor leaky_relu(const Tensor& x, float slope) { return eltwise(EltwiseKind::relu, x, slope); }
Tensor gelu(const Tensor& x, bool approximate) {
  return eltwise(approximate ? EltwiseKind::gelu_tanh : EltwiseKind::gelu_erf, x);
}
Tensor sigmoid(const Tensor& x) { return eltwise(EltwiseKind::sigmoid, x); }
Tensor tanh(const Tensor& x) { return eltwise(EltwiseKind::tanh, x); }
Tensor exp(const Tensor& x) { return eltwise(EltwiseKind::exp, x); }
Tensor log(const Tensor& x) { return eltwise(EltwiseKind::log, x); }
Tensor sqrt(const Tensor& x) { return eltwise(EltwiseKind::sqrt, x); }
Tensor square(const Tensor& x) { return eltwise(EltwiseKind::square, x); }
Tensor abs(const Tensor& x) { return eltwise(EltwiseKind::abs, x); }
Tensor elu(const Tensor& x, float alpha) { return eltwise(EltwiseKind::elu, x, alpha); }
Tensor softplus(const Tensor& x) { return eltwise(EltwiseKind::softplus, x); }
Tensor swish(const Tensor& x) { return eltwise(EltwiseKind::swish, x, 1.0f); }
Tensor linear(const Tensor& x, float alpha, float beta) { return eltwise(EltwiseKind::linear, x, alpha, beta); }
Tensor clip(const Tensor& x, float low, float high) {
  if (!(low <= high)) {
    throw std::invalid_argument("clip: low " + std::to_string(low) + " exceeds high " + std::to_string(high));
  }
  return eltwise(EltwiseKind::clip, x, low, high);
}
Tensor pow(const Tensor& x, float exponent) { return eltwise(EltwiseKind::pow, x, 1.0f, exponent); }

}  // namespace kiln
