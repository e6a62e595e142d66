#include "tensor/ops/eltwise.h"

#include <omp.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "tensor/isa_clones.h"
#include "tensor/ops/recorder.h"
#include "tensor/ops/binary.h"
#include "tensor/ops/common.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/isa.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/onednn/profiler.h"

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
    case EltwiseKind::affine: return {"affine", A::eltwise_linear};
    case EltwiseKind::clip: return {"clip", A::eltwise_clip_v2};
    case EltwiseKind::pow: return {"pow", A::eltwise_pow};
    case EltwiseKind::relu6: return {"relu6", A::eltwise_clip_v2};  // with bounds 0 and 6
    case EltwiseKind::hard_sigmoid: return {"hard_sigmoid", A::undef};  // Kiln's kernels: oneDNN 2.6 has none
    case EltwiseKind::hard_swish: return {"hard_swish", A::eltwise_hardswish};
    case EltwiseKind::mish: return {"mish", A::eltwise_mish};
  }
  throw std::invalid_argument("eltwise: unknown kind");
}

// The alpha and beta oneDNN's algorithm needs for a kind whose own attributes are empty.
std::pair<float, float> onednn_parameters(EltwiseKind kind, float alpha, float beta) {
  if (kind == EltwiseKind::relu6) return {0.f, 6.f};
  return {alpha, beta};
}

dnnl::eltwise_forward::primitive_desc forward_pd(const KindInfo& k, const dnnl::memory::desc& md, float alpha,
                                                 float beta) {
  return dnnl::eltwise_forward::primitive_desc(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, k.alg, md, alpha, beta),
      onednn::default_attr(), onednn::cpu_engine());
}

// Kernels of our own, used where oneDNN 2.6 drops NaN (see eltwise.h): its relu (alpha 0)
// and clip_v2 are max/min instructions, which return the non-NaN operand. Each gives oneDNN's
// result bit for bit on every non-NaN input (tests/nan_test.cc checks). The loops are built for
// AVX-512 and AVX2 besides the baseline (KILN_ISA_CLONES, tensor/isa_clones.h).

constexpr int64_t kParallelThreshold = 1 << 16;

// Runs body(begin, end) over [0, n), split among the OpenMP threads above the threshold.
template <typename Body>
void parallel_chunks(int64_t n, const Body& body) {
  if (n <= kParallelThreshold) {
    body(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    int64_t threads = omp_get_num_threads(), chunk = (n + threads - 1) / threads;
    int64_t begin = std::min(n, omp_get_thread_num() * chunk), end = std::min(n, begin + chunk);
    if (begin < end) body(begin, end);
  }
}

// Raw bf16 bits: negative or -0 (not NaN); NaN.
inline bool bf16_negative(uint16_t b) { return static_cast<uint16_t>(b - 0x8000u) <= 0x7f80u; }
inline bool bf16_nan(uint16_t b) { return (b & 0x7fffu) > 0x7f80u; }

// oneDNN stores bf16 with vcvtneps2bf16 where the CPU has it (avx512_core_bf16 and up): round
// to nearest even, and denormals flushed to a signed zero; its emulation on older CPUs rounds
// the same way but keeps denormals. Our bf16 kernels round (or flush) the same way: with that
// instruction where oneDNN uses it, with plain integer code otherwise.
bool onednn_stores_bf16_natively() { return cpu::effective_isa() >= cpu::Isa::avx512_core_bf16; }
inline uint16_t bf16_store(uint16_t b, bool flush) { return flush && (b & 0x7f80u) == 0 ? b & 0x8000u : b; }

// relu: x <= 0 ? +0 : x, which keeps NaN (oneDNN: max(x, 0)).
KILN_ISA_CLONES void relu_f32(const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] <= 0.f ? 0.f : x[i];
}
KILN_ISA_CLONES void relu_bf16(const uint16_t* x, uint16_t* y, int64_t n, bool flush) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_negative(x[i]) ? 0 : bf16_store(x[i], flush);
}

// PyTorch's threshold_backward: x <= 0 ? 0 : grad, so a NaN x passes the gradient on and a
// NaN gradient stops at x <= 0. The zero takes grad's sign, as oneDNN's grad * 0 does.
KILN_ISA_CLONES void relu_backward_f32(const float* g, const float* x, float* dx, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dx[i] = x[i] <= 0.f ? std::copysign(0.f, g[i]) : g[i];
}
KILN_ISA_CLONES void relu_backward_bf16(const uint16_t* g, const uint16_t* x, uint16_t* dx, int64_t n,
                                           bool flush) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dx[i] = bf16_negative(x[i]) || x[i] == 0 ? g[i] & 0x8000u : bf16_store(g[i], flush);
}

// clip: NaN stays NaN, others min(max(x, low), high) in oneDNN's operand order (so -0 and +0
// come out as before).
KILN_ISA_CLONES void clip_f32(const float* x, float* y, int64_t n, float low, float high) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float t = x[i] > low ? x[i] : low;
    t = t < high ? t : high;
    y[i] = x[i] != x[i] ? x[i] : t;
  }
}

// add_relu of same-shaped operands: relu(a + b) as oneDNN's add with a relu post-op computes
// it (f32 add, max with 0, bf16 store), except that NaN stays NaN.
KILN_ISA_CLONES void add_relu_f32(const float* a, const float* b, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float z = a[i] + b[i];
    y[i] = z <= 0.f ? 0.f : z;
  }
}

// The bf16 kernels that round an f32 result: clip (low and high round) and add_relu.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define KILN_NATIVE_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's own _mm512_undefined_* in these intrinsics
KILN_NATIVE_BF16 inline __m512 load_bf16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
KILN_NATIVE_BF16 inline void store_bf16(uint16_t* p, __mmask16 m, __m512 v) {
  _mm256_mask_storeu_epi16(p, m, (__m256i)_mm512_cvtneps_pbh(v));
}
KILN_NATIVE_BF16 void clip_bf16_native(const uint16_t* x, uint16_t* y, int64_t n, float low, float high) {
  const __m512 lo = _mm512_set1_ps(low), hi = _mm512_set1_ps(high);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    __m512 v = load_bf16(x + i, m);
    __m512 t = _mm512_min_ps(_mm512_max_ps(v, lo), hi);  // oneDNN's clip_v2: max, then min
    store_bf16(y + i, m, _mm512_mask_mov_ps(t, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v));
  }
}
KILN_NATIVE_BF16 void add_relu_bf16_native(const uint16_t* a, const uint16_t* b, uint16_t* y, int64_t n) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    __m512 z = _mm512_add_ps(load_bf16(a + i, m), load_bf16(b + i, m));
    store_bf16(y + i, m, _mm512_mask_mov_ps(z, _mm512_cmp_ps_mask(z, zero, _CMP_LE_OQ), zero));
  }
}
#pragma GCC diagnostic pop
#else
void clip_bf16_native(const uint16_t*, uint16_t*, int64_t, float, float) {
  throw std::logic_error("clip: no AVX512-BF16 kernel in this build");
}
void add_relu_bf16_native(const uint16_t*, const uint16_t*, uint16_t*, int64_t) {
  throw std::logic_error("add_relu: no AVX512-BF16 kernel in this build");
}
#endif

// Round to nearest even, NaN kept quiet, denormals kept (oneDNN's emulated store).
inline uint32_t bf16_round(uint32_t u) {
  uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return (u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : rounded;
}
KILN_ISA_CLONES void clip_bf16_emulated(const uint16_t* x, uint16_t* y, int64_t n, float low, float high) {
  const uint32_t low_bits = bf16_round(std::bit_cast<uint32_t>(low)), high_bits = bf16_round(std::bit_cast<uint32_t>(high));
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    uint32_t xb = x[i];
    float v = std::bit_cast<float>(xb << 16);
    bool above_low = v > low;
    float t = above_low ? v : low;
    uint32_t r = t < high ? (above_low ? xb : low_bits) : high_bits;
    y[i] = static_cast<uint16_t>((xb & 0x7fffu) > 0x7f80u ? xb : r);
  }
}
KILN_ISA_CLONES void add_relu_bf16_emulated(const uint16_t* a, const uint16_t* b, uint16_t* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float z = std::bit_cast<float>(static_cast<uint32_t>(a[i]) << 16) +
              std::bit_cast<float>(static_cast<uint32_t>(b[i]) << 16);
    y[i] = static_cast<uint16_t>(bf16_round(std::bit_cast<uint32_t>(z <= 0.f ? 0.f : z)));
  }
}

// affine: alpha * x + beta as oneDNN's eltwise_linear computes it, one fused multiply-add, so
// f32 results are its results bit for bit. bf16 is computed in f32 and stored as oneDNN stores
// it: natively (vcvtneps2bf16) a denormal f32 result becomes a signed zero; emulated it rounds.
KILN_ISA_CLONES void affine_f32(const float* x, float* y, int64_t n, float alpha, float beta) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = std::fma(alpha, x[i], beta);
}
KILN_ISA_CLONES void affine_bf16(const uint16_t* x, uint16_t* y, int64_t n, float alpha, float beta, bool flush) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u = std::bit_cast<uint32_t>(std::fma(alpha, std::bit_cast<float>(static_cast<uint32_t>(x[i]) << 16), beta));
    y[i] = static_cast<uint16_t>(flush && (u & 0x7f800000u) == 0 ? (u >> 16) & 0x8000u : bf16_round(u));
  }
}

// hard_sigmoid as Keras 3 writes it, relu6(x + 3) / 6 (two roundings, as JAX's), NaN kept;
// bf16 in f32 and stored as oneDNN stores bf16. Its gradient: g / 6 inside (-3, 3), else 0.
inline float hard_sigmoid_value(float x) {
  float t = x + 3.f;
  t = t > 0.f ? t : 0.f;
  t = t < 6.f ? t : 6.f;
  return x != x ? x : t / 6.f;
}
inline uint16_t bf16_from_f32(float v, bool flush) {
  uint32_t u = std::bit_cast<uint32_t>(v);
  return static_cast<uint16_t>(flush && (u & 0x7f800000u) == 0 ? (u >> 16) & 0x8000u : bf16_round(u));
}
inline float f32_from_bf16(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }
KILN_ISA_CLONES void hard_sigmoid_f32(const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = hard_sigmoid_value(x[i]);
}
KILN_ISA_CLONES void hard_sigmoid_bf16(const uint16_t* x, uint16_t* y, int64_t n, bool flush) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_from_f32(hard_sigmoid_value(f32_from_bf16(x[i])), flush);
}
KILN_ISA_CLONES void hard_sigmoid_backward_f32(const float* g, const float* x, float* dx, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dx[i] = x[i] > -3.f && x[i] < 3.f ? g[i] / 6.f : std::copysign(0.f, g[i]);
}
KILN_ISA_CLONES void hard_sigmoid_backward_bf16(const uint16_t* g, const uint16_t* x, uint16_t* dx, int64_t n,
                                               bool flush) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float v = f32_from_bf16(x[i]), gv = f32_from_bf16(g[i]);
    dx[i] = v > -3.f && v < 3.f ? bf16_from_f32(gv / 6.f, flush) : g[i] & 0x8000u;
  }
}

KILN_ISA_CLONES uint32_t max_abs_bits_f32(const uint32_t* p, int64_t n) {
  uint32_t m = 0;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t a = p[i] & 0x7fffffffu;
    m = a > m ? a : m;
  }
  return m;
}
KILN_ISA_CLONES uint32_t max_abs_bits_bf16(const uint16_t* p, int64_t n) {
  uint16_t m = 0;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) {
    uint16_t a = p[i] & 0x7fffu;
    m = a > m ? a : m;
  }
  return static_cast<uint32_t>(m) << 16;
}

const uint16_t* bf16_bits(const Tensor& t) { return static_cast<const uint16_t*>(t.raw_data()); }
uint16_t* bf16_bits(Tensor& t) { return static_cast<uint16_t*>(t.raw_data()); }

void relu_forward(const Tensor& src, Tensor& out) {
  onednn::profiler::KernelScope timed;
  if (src.dtype() == DType::f32) {
    const float* x = src.data<float>();
    float* y = out.data<float>();
    parallel_chunks(src.numel(), [&](int64_t b, int64_t e) { relu_f32(x + b, y + b, e - b); });
  } else {
    const uint16_t* x = bf16_bits(src);
    uint16_t* y = bf16_bits(out);
    const bool flush = onednn_stores_bf16_natively();
    parallel_chunks(src.numel(), [&](int64_t b, int64_t e) { relu_bf16(x + b, y + b, e - b, flush); });
  }
}

void relu_backward(const Tensor& grad, const Tensor& data, Tensor& out) {
  onednn::profiler::KernelScope timed;
  if (grad.dtype() == DType::f32) {
    const float *g = grad.data<float>(), *x = data.data<float>();
    float* dx = out.data<float>();
    parallel_chunks(grad.numel(), [&](int64_t b, int64_t e) { relu_backward_f32(g + b, x + b, dx + b, e - b); });
  } else {
    const uint16_t *g = bf16_bits(grad), *x = bf16_bits(data);
    uint16_t* dx = bf16_bits(out);
    const bool flush = onednn_stores_bf16_natively();
    parallel_chunks(grad.numel(),
                    [&](int64_t b, int64_t e) { relu_backward_bf16(g + b, x + b, dx + b, e - b, flush); });
  }
}

// Up to this many elements affine runs inline on the calling thread: no primitive call and no
// OpenMP fork/join for the Rescaling of a small batch or a scaled gradient. Above it oneDNN's
// parallel kernel runs (same results).
constexpr int64_t kInlineAffineMax = kParallelThreshold;

void affine_forward(const Tensor& src, Tensor& out, float alpha, float beta) {
  onednn::profiler::KernelScope timed;
  if (src.dtype() == DType::f32) {
    affine_f32(src.data<float>(), out.data<float>(), src.numel(), alpha, beta);
  } else {
    affine_bf16(bf16_bits(src), bf16_bits(out), src.numel(), alpha, beta, onednn_stores_bf16_natively());
  }
}

void hard_sigmoid_forward(const Tensor& src, Tensor& out) {
  onednn::profiler::KernelScope timed;
  if (src.dtype() == DType::f32) {
    const float* x = src.data<float>();
    float* y = out.data<float>();
    parallel_chunks(src.numel(), [&](int64_t b, int64_t e) { hard_sigmoid_f32(x + b, y + b, e - b); });
  } else {
    const uint16_t* x = bf16_bits(src);
    uint16_t* y = bf16_bits(out);
    const bool flush = onednn_stores_bf16_natively();
    parallel_chunks(src.numel(), [&](int64_t b, int64_t e) { hard_sigmoid_bf16(x + b, y + b, e - b, flush); });
  }
}

void hard_sigmoid_backward(const Tensor& grad, const Tensor& data, Tensor& out) {
  onednn::profiler::KernelScope timed;
  if (grad.dtype() == DType::f32) {
    const float *g = grad.data<float>(), *x = data.data<float>();
    float* dx = out.data<float>();
    parallel_chunks(grad.numel(), [&](int64_t b, int64_t e) { hard_sigmoid_backward_f32(g + b, x + b, dx + b, e - b); });
  } else {
    const uint16_t *g = bf16_bits(grad), *x = bf16_bits(data);
    uint16_t* dx = bf16_bits(out);
    const bool flush = onednn_stores_bf16_natively();
    parallel_chunks(grad.numel(),
                    [&](int64_t b, int64_t e) { hard_sigmoid_backward_bf16(g + b, x + b, dx + b, e - b, flush); });
  }
}

void clip_forward(const Tensor& src, Tensor& out, float low, float high) {
  onednn::profiler::KernelScope timed;
  if (src.dtype() == DType::f32) {
    const float* x = src.data<float>();
    float* y = out.data<float>();
    parallel_chunks(src.numel(), [&](int64_t b, int64_t e) { clip_f32(x + b, y + b, e - b, low, high); });
  } else {
    const uint16_t* x = bf16_bits(src);
    uint16_t* y = bf16_bits(out);
    const bool native = onednn_stores_bf16_natively();
    parallel_chunks(src.numel(), [&](int64_t b, int64_t e) {
      native ? clip_bf16_native(x + b, y + b, e - b, low, high) : clip_bf16_emulated(x + b, y + b, e - b, low, high);
    });
  }
}

// Copies src's NaNs into out (oneDNN's exp clamps its input, so exp(NaN) came out inf).
void restore_nan(const Tensor& src, Tensor& out) {
  onednn::profiler::KernelScope timed;
  if (!detail::any_nan(src)) return;
  const int64_t n = src.numel();
  if (src.dtype() == DType::f32) {
    const float* x = src.data<float>();
    float* y = out.data<float>();
    for (int64_t i = 0; i < n; ++i) {
      if (x[i] != x[i]) y[i] = x[i];
    }
  } else {
    const uint16_t* x = bf16_bits(src);
    uint16_t* y = bf16_bits(out);
    for (int64_t i = 0; i < n; ++i) {
      if (bf16_nan(x[i])) y[i] = x[i];
    }
  }
}

}  // namespace

namespace detail {

void add_relu_same_shape(const Tensor& a, const Tensor& b, Tensor& out) {
  if (a.shape() != b.shape() || out.shape() != a.shape() || a.dtype() != b.dtype() || out.dtype() != a.dtype() ||
      !a.is_contiguous() || !b.is_contiguous() || !out.is_contiguous() || !is_floating(a.dtype())) {
    throw std::invalid_argument("add_relu_same_shape: expected dense f32 or bf16 tensors of one shape, got " +
                                a.describe() + ", " + b.describe() + " -> " + out.describe());
  }
  onednn::profiler::KernelScope timed;
  if (a.dtype() == DType::f32) {
    const float *x = a.data<float>(), *y = b.data<float>();
    float* z = out.data<float>();
    parallel_chunks(a.numel(), [&](int64_t lo, int64_t hi) { add_relu_f32(x + lo, y + lo, z + lo, hi - lo); });
  } else {
    const uint16_t *x = bf16_bits(a), *y = bf16_bits(b);
    uint16_t* z = bf16_bits(out);
    const bool native = onednn_stores_bf16_natively();
    parallel_chunks(a.numel(), [&](int64_t lo, int64_t hi) {
      native ? add_relu_bf16_native(x + lo, y + lo, z + lo, hi - lo) : add_relu_bf16_emulated(x + lo, y + lo, z + lo, hi - lo);
    });
  }
}

float max_abs(const Tensor& t) {
  check_floating(t, "max_abs");
  if (!t.is_contiguous() && !t.is_packed()) {
    throw std::invalid_argument("max_abs: expected a dense tensor, got " + t.describe());
  }
  onednn::profiler::KernelScope timed;  // a scan for choose_relu_fusion: it reads the data, as compute does
  // A packed tensor is scanned in its own layout: the block padding holds zeros.
  const void* base = t.is_packed() ? t.packed_data() : t.raw_data();
  const int64_t n = t.is_packed() ? static_cast<int64_t>(t.packed_layout()->bytes() / dtype_size(t.dtype())) : t.numel();
  // |x| as raw f32 bits: unsigned order is float order, with inf and then NaN above.
  auto scan = [&](int64_t b, int64_t e) {
    return t.dtype() == DType::f32 ? max_abs_bits_f32(static_cast<const uint32_t*>(base) + b, e - b)
                                   : max_abs_bits_bf16(static_cast<const uint16_t*>(base) + b, e - b);
  };
  uint32_t m = 0;
  if (n <= kParallelThreshold) {
    m = scan(0, n);
  } else {
#pragma omp parallel reduction(max : m)
    {
      int64_t threads = omp_get_num_threads(), chunk = (n + threads - 1) / threads;
      int64_t begin = std::min(n, omp_get_thread_num() * chunk), end = std::min(n, begin + chunk);
      if (begin < end) m = scan(begin, end);
    }
  }
  float f;
  std::memcpy(&f, &m, sizeof f);
  return f;
}

// The chain costs roughly as much per output as scanning this many input bytes (measured on
// conv, matmul and add kernels; the scan reads about 28 GB/s from L3 on one core).
constexpr double kScanBytesPerChainOutput = 6.0;

ReluFusion choose_relu_fusion(const Tensor& src, const Tensor& weights, const Tensor& bias, int64_t terms,
                              int64_t outputs) {
  double bytes = 0;
  for (const Tensor* t : {&src, &weights, &bias}) {
    if (!t->defined()) continue;  // only the bias may be absent
    if (!t->is_contiguous() && !t->is_packed()) return ReluFusion::nan_keeping_post_op;  // strided views are not scanned
    bytes += static_cast<double>(t->nbytes());
  }
  if (bytes > kScanBytesPerChainOutput * static_cast<double>(outputs)) return ReluFusion::nan_keeping_post_op;
  double a = max_abs(src), b = max_abs(weights), c = bias.defined() ? max_abs(bias) : 0.0;
  // Finite inputs give a NaN only through inf - inf or 0 * inf, which needs an overflow; the
  // sum of `terms` products and the bias stays far below FLT_MAX here (rounding included).
  double bound = terms > 0 ? a * b * static_cast<double>(terms) + c : a + b;
  return bound < 1e38 ? ReluFusion::post_op : ReluFusion::unfused;  // NaN and inf compare false
}

bool append_eltwise_post_ops(dnnl::post_ops& po, EltwiseKind kind, float alpha, float beta, float scale) {
  using A = dnnl::algorithm;
  switch (kind) {
    case EltwiseKind::hard_sigmoid:  // relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1)
      po.append_eltwise(1.f, A::eltwise_linear, 1.f / 6.f, 0.5f);
      po.append_eltwise(scale, A::eltwise_clip_v2, 0.f, 1.f);
      return true;
    case EltwiseKind::sigmoid: po.append_eltwise(scale, A::eltwise_logistic, 0.f, 0.f); return true;
    case EltwiseKind::tanh: po.append_eltwise(scale, A::eltwise_tanh, 0.f, 0.f); return true;
    case EltwiseKind::exp: po.append_eltwise(scale, A::eltwise_exp, 0.f, 0.f); return true;
    case EltwiseKind::sqrt: po.append_eltwise(scale, A::eltwise_sqrt, 0.f, 0.f); return true;
    case EltwiseKind::relu:
    case EltwiseKind::gelu_tanh:
    case EltwiseKind::gelu_erf:
    case EltwiseKind::log:
    case EltwiseKind::square:
    case EltwiseKind::abs:
    case EltwiseKind::elu:
    case EltwiseKind::softplus:
    case EltwiseKind::swish:
    case EltwiseKind::affine:
    case EltwiseKind::clip:
    case EltwiseKind::pow:
    case EltwiseKind::relu6:
    case EltwiseKind::hard_swish:
    case EltwiseKind::mish: {
      auto [a, b] = onednn_parameters(kind, alpha, beta);
      po.append_eltwise(scale, info(kind).alg, a, b);
      return true;
    }
  }
  return false;
}

void append_relu(dnnl::post_ops& po, ReluFusion fusion) {
  if (fusion == ReluFusion::post_op) {
    po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  } else if (fusion == ReluFusion::nan_keeping_post_op) {
    po.append_eltwise(1.f, dnnl::algorithm::eltwise_elu, 0.f, 0.f);
    po.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, 1.f, 0.f);
  } else {
    throw std::logic_error("append_relu: no post-op for this ReLU fusion");
  }
}

}  // namespace detail

bool eltwise_takes_no_parameters(EltwiseKind kind) {
  return kind == EltwiseKind::relu6 || kind == EltwiseKind::hard_sigmoid || kind == EltwiseKind::hard_swish ||
         kind == EltwiseKind::mish;
}

bool eltwise_backward_uses_output(EltwiseKind kind) {
  return kind == EltwiseKind::sigmoid || kind == EltwiseKind::tanh || kind == EltwiseKind::exp ||
         kind == EltwiseKind::sqrt;
}

const char* eltwise_name(EltwiseKind kind) { return info(kind).name; }

std::vector<EltwiseKind> all_eltwise_kinds() {
  std::vector<EltwiseKind> out;
  for (int k = 0; k <= static_cast<int>(EltwiseKind::mish); ++k) out.push_back(static_cast<EltwiseKind>(k));
  return out;
}

ops::Attrs eltwise_attrs(EltwiseKind kind, float alpha, float beta) {
  ops::Attrs call(eltwise_name(kind));
  call.set("alpha", alpha).set("beta", beta);
  return call;
}

Tensor eltwise(EltwiseKind kind, const Tensor& x, float alpha, float beta) {
  KindInfo k = info(kind);
  detail::check_floating(x, k.name);
  if (eltwise_takes_no_parameters(kind) && (alpha != 0.f || beta != 0.f)) {
    throw std::invalid_argument(std::string(k.name) + ": takes no parameters, got alpha " + std::to_string(alpha) +
                                " and beta " + std::to_string(beta) + " (both must be 0)");
  }
  Tensor src = detail::dense(x);
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  if (x.numel() > 0 && kind == EltwiseKind::relu && alpha == 0.f) {
    relu_forward(src, out);
  } else if (x.numel() > 0 && (kind == EltwiseKind::clip || kind == EltwiseKind::relu6)) {
    auto [low, high] = onednn_parameters(kind, alpha, beta);
    clip_forward(src, out, low, high);
  } else if (x.numel() > 0 && kind == EltwiseKind::hard_sigmoid) {
    hard_sigmoid_forward(src, out);
  } else if (x.numel() > 0 && kind == EltwiseKind::affine && x.numel() <= kInlineAffineMax) {
    affine_forward(src, out, alpha, beta);
  } else if (x.numel() > 0) {
    auto md = onednn::desc_of(src);
    auto prim = onednn::cached<dnnl::eltwise_forward>(
        k.name, onednn::KeyBuilder("eltwise").add(k.name).add(src).add(alpha).add(beta),
        [&] { return forward_pd(k, md, alpha, beta); });
    onednn::execute(k.name, prim.primitive,
                    {{DNNL_ARG_SRC, onednn::memory_of(src, md)}, {DNNL_ARG_DST, onednn::memory_of(out, md)}});
    if (kind == EltwiseKind::exp || kind == EltwiseKind::hard_swish || kind == EltwiseKind::mish) restore_nan(src, out);
  }
  if (autograd::should_record({&x})) {
    if (kind == EltwiseKind::affine) {
      autograd::record_lazy(k.name, [&] { return eltwise_attrs(kind, alpha, beta); }, {x}, {out}, [alpha](const std::vector<Tensor>& g) {
        return std::vector<Tensor>{g[0] * alpha};
      });
    } else if (kind == EltwiseKind::pow) {
      // d/dx alpha*x^beta = alpha*beta*x^(beta-1), kept differentiable for higher orders.
      autograd::record_lazy(k.name, [&] { return eltwise_attrs(kind, alpha, beta); }, {x}, {out}, [x, alpha, beta](const std::vector<Tensor>& g) {
        return std::vector<Tensor>{g[0] * eltwise(EltwiseKind::pow, x, alpha * beta, beta - 1.0f)};
      });
    } else {
      Tensor data = eltwise_backward_uses_output(kind) ? out : x;
      autograd::record_lazy(k.name, [&] { return eltwise_attrs(kind, alpha, beta); }, {x}, {out}, [kind, data, alpha, beta](const std::vector<Tensor>& g) {
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
  if ((kind == EltwiseKind::relu && alpha == 0.f) || kind == EltwiseKind::hard_sigmoid) {
    kind == EltwiseKind::relu ? relu_backward(g, d, out) : hard_sigmoid_backward(g, d, out);
    if (autograd::should_record({&grad, &data})) {
      autograd::record_without_second_order("eltwise_backward", {grad, data}, {out});
    }
    return out;
  }
  std::tie(alpha, beta) = onednn_parameters(kind, alpha, beta);
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
  if (autograd::should_record({&grad, &data})) {
    autograd::record_without_second_order("eltwise_backward", {grad, data}, {out});
  }
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
Tensor affine(const Tensor& x, float alpha, float beta) { return eltwise(EltwiseKind::affine, x, alpha, beta); }
Tensor clip(const Tensor& x, float low, float high) {
  if (!(low <= high)) {
    throw std::invalid_argument("clip: low " + std::to_string(low) + " exceeds high " + std::to_string(high));
  }
  return eltwise(EltwiseKind::clip, x, low, high);
}
Tensor pow(const Tensor& x, float exponent) { return eltwise(EltwiseKind::pow, x, 1.0f, exponent); }
Tensor relu6(const Tensor& x) { return eltwise(EltwiseKind::relu6, x); }
Tensor hard_sigmoid(const Tensor& x) { return eltwise(EltwiseKind::hard_sigmoid, x); }
Tensor hard_swish(const Tensor& x) { return eltwise(EltwiseKind::hard_swish, x); }
Tensor mish(const Tensor& x) { return eltwise(EltwiseKind::mish, x); }

}  // namespace kiln
