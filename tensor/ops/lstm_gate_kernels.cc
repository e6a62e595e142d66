#include "tensor/ops/lstm_gate_kernels.h"

#include <bit>
#include <cstdint>

#include <immintrin.h>

#include "tensor/onednn/isa.h"

// GCC 12's AVX-512 intrinsics fill their unused operands with _mm512_undefined_*(), which
// -Wmaybe-uninitialized reports at every use.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace kiln::rnn_detail {
namespace {

#define KILN_INLINE inline __attribute__((always_inline))
// The same loops built for AVX-512 (what oneDNN's own kernels use on this machine); the
// baseline build serves CPUs without it. With AVX512-BF16 the kernels below, written with
// intrinsics, run instead.
#define KILN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

// exp(x) = 2^n * p(r), r = x - n ln 2 in [-ln 2 / 2, ln 2 / 2] (ln 2 split in two constants),
// p oneDNN's degree-5 minimax polynomial; branch-free so that it vectorizes. The clamp keeps
// n in [-126, 127], where 2^n is a normal float.
KILN_INLINE float exp_poly(float x) {
  x = x < -87.f ? -87.f : x > 88.f ? 88.f : x;
  // n = round(x / ln 2) by adding and taking away 1.5 * 2^23 (floor() vectorizes only
  // under -fno-trapping-math, which Kiln does not build with).
  const float n = (x * 1.44269504f + 12582912.f) - 12582912.f;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 0.008289290592074394f;
  p = p * r + 0.04189782217144966f;
  p = p * r + 0.16667652130126953f;
  p = p * r + 0.4999915063381195f;
  p = p * r + 0.9999997019767761f;
  p = p * r + 1.f;
  const uint32_t scale = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(scale);
}

KILN_INLINE float sigmoid(float x) { return 1.f / (1.f + exp_poly(-x)); }
KILN_INLINE float tanh_poly(float x) { return 1.f - 2.f / (1.f + exp_poly(2.f * x)); }

// Round to nearest even, as oneDNN stores bf16 (NaN handling left out: none arise here).
KILN_INLINE uint16_t to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

template <typename Data>
KILN_INLINE Data store_as(float v) {
  if constexpr (sizeof(Data) == 2) {
    return to_bf16(v);
  } else {
    return v;
  }
}

// Batch row b's slices of a step's buffers, for the loops and the intrinsics alike.
template <typename Data>
struct ForwardRow {
  float* gates;
  const float* c_prev;
  float* c_next;
  Data* h_next;
  Data* y;
};
template <typename Data>
KILN_INLINE ForwardRow<Data> forward_row(const GateForwardStep& s, int64_t b) {
  const int64_t u = s.units;
  return {s.gates + b * 4 * u, s.c_prev + b * u, s.c_next + b * u, static_cast<Data*>(s.h_next) + b * s.h_row_stride,
          static_cast<Data*>(s.y) + b * s.y_row_stride};
}

template <typename Data>
struct BackwardRow {
  const float* gates;
  const float* c_prev;
  const float* c;
  const float* dy;  // null without dy
  const float* dh_recurrent;
  float* dc;
  Data* dgates;
};
template <typename Data>
KILN_INLINE BackwardRow<Data> backward_row(const GateBackwardStep& s, int64_t b) {
  const int64_t u = s.units;
  return {s.gates + b * 4 * u, s.c_prev + b * u, s.c + b * u, s.dy ? s.dy + b * s.dy_row_stride : nullptr,
          s.dh_recurrent + b * u, s.dc + b * u, static_cast<Data*>(s.dgates) + b * 4 * u};
}

template <typename Data>
KILN_INLINE void forward_body(const GateForwardStep& s, int64_t j0, int64_t j1) {
  const int64_t u = s.units;
  for (int64_t b = 0; b < s.batch; ++b) {
    const auto [g, cp, cn, hn, y] = forward_row<Data>(s, b);
#pragma omp simd
    for (int64_t j = j0; j < j1; ++j) {
      const float i = sigmoid(g[j]), f = sigmoid(g[u + j]), cc = tanh_poly(g[2 * u + j]), o = sigmoid(g[3 * u + j]);
      const float c = f * cp[j] + i * cc;
      const Data h = store_as<Data>(o * tanh_poly(c));
      g[j] = i, g[u + j] = f, g[2 * u + j] = cc, g[3 * u + j] = o;
      cn[j] = c;
      hn[j] = h;
      y[j] = h;
    }
  }
}

template <typename Data, bool kHasDy>
KILN_INLINE void backward_rows(const GateBackwardStep& s, int64_t j0, int64_t j1) {
  const int64_t u = s.units;
  float* db = s.dbias;
  for (int64_t b = 0; b < s.batch; ++b) {
    const auto [g, cp, c, dy, dhr, dc, dg] = backward_row<Data>(s, b);
#pragma omp simd
    for (int64_t j = j0; j < j1; ++j) {
      const float i = g[j], f = g[u + j], cc = g[2 * u + j], o = g[3 * u + j];
      const float tc = tanh_poly(c[j]);
      const float dh = kHasDy ? dy[j] + dhr[j] : dhr[j];
      const float dcell = dc[j] + dh * o * (1.f - tc * tc);
      const float dgi = dcell * cc * i * (1.f - i);
      const float dgf = dcell * cp[j] * f * (1.f - f);
      const float dgc = dcell * i * (1.f - cc * cc);
      const float dgo = dh * tc * o * (1.f - o);
      dc[j] = dcell * f;
      dg[j] = store_as<Data>(dgi), dg[u + j] = store_as<Data>(dgf);
      dg[2 * u + j] = store_as<Data>(dgc), dg[3 * u + j] = store_as<Data>(dgo);
      db[j] += dgi, db[u + j] += dgf, db[2 * u + j] += dgc, db[3 * u + j] += dgo;
    }
  }
}

template <typename Data>
KILN_INLINE void backward_body(const GateBackwardStep& s, int64_t j0, int64_t j1) {
  if (s.dy) {
    backward_rows<Data, true>(s, j0, j1);
  } else {
    backward_rows<Data, false>(s, j0, j1);
  }
}

KILN_AVX512 void forward_avx512(const GateForwardStep& s, int64_t j0, int64_t j1) {
  if (s.bf16) {
    forward_body<uint16_t>(s, j0, j1);
  } else {
    forward_body<float>(s, j0, j1);
  }
}

void forward_baseline(const GateForwardStep& s, int64_t j0, int64_t j1) {
  if (s.bf16) {
    forward_body<uint16_t>(s, j0, j1);
  } else {
    forward_body<float>(s, j0, j1);
  }
}

KILN_AVX512 void backward_avx512(const GateBackwardStep& s, int64_t j0, int64_t j1) {
  if (s.bf16) {
    backward_body<uint16_t>(s, j0, j1);
  } else {
    backward_body<float>(s, j0, j1);
  }
}

void backward_baseline(const GateBackwardStep& s, int64_t j0, int64_t j1) {
  if (s.bf16) {
    backward_body<uint16_t>(s, j0, j1);
  } else {
    backward_body<float>(s, j0, j1);
  }
}

// The kernels for CPUs with AVX512-BF16, by hand: vcvtneps2bf16 rounds to bf16 in one
// instruction (to nearest even, as to_bf16), where the compiler's vectorization of the loops
// above spends five integer operations a value on it and shuffles to pack the halves. At
// batch 128, U = 128, bf16, one thread: forward 0.458 -> 0.345 ms and backward 0.350 ->
// 0.331 ms a pass of 28 steps (a standalone harness of both, 2026-12-05, AMD EPYC Zen 5, load
// under 1.5). The arithmetic is the loops' (the same exp polynomial and 2^n by its bits,
// divisions, no reassociation), except that multiply-adds are fused, so results differ from
// the loops' by rounding.
#define KILN_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define KILN_VECTOR_INLINE KILN_AVX512_BF16 inline __attribute__((always_inline))

KILN_VECTOR_INLINE __m512 splat(float v) { return _mm512_set1_ps(v); }

KILN_VECTOR_INLINE __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, splat(-87.f)), splat(88.f));
  const __m512 magic = splat(12582912.f);
  const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, splat(1.44269504f), magic), magic);
  __m512 r = _mm512_fnmadd_ps(n, splat(0.693359375f), x);
  r = _mm512_fmadd_ps(n, splat(2.12194440e-4f), r);
  __m512 p = splat(0.008289290592074394f);
  p = _mm512_fmadd_ps(p, r, splat(0.04189782217144966f));
  p = _mm512_fmadd_ps(p, r, splat(0.16667652130126953f));
  p = _mm512_fmadd_ps(p, r, splat(0.4999915063381195f));
  p = _mm512_fmadd_ps(p, r, splat(0.9999997019767761f));
  p = _mm512_fmadd_ps(p, r, splat(1.f));
  const __m512i scale = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(scale));
}
KILN_VECTOR_INLINE __m512 sigmoid16(__m512 x) {
  return _mm512_div_ps(splat(1.f), _mm512_add_ps(splat(1.f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}
KILN_VECTOR_INLINE __m512 tanh16(__m512 x) {
  return _mm512_sub_ps(splat(1.f), _mm512_div_ps(splat(2.f), _mm512_add_ps(splat(1.f), exp16(_mm512_add_ps(x, x)))));
}

// Whole vectors unmasked; the last partial one of a unit range through the mask.
KILN_VECTOR_INLINE __m512 load16(const float* p, __mmask16 m) {
  return m == 0xffff ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}
KILN_VECTOR_INLINE void store16(float* p, __mmask16 m, __m512 v) {
  if (m == 0xffff) {
    _mm512_storeu_ps(p, v);
  } else {
    _mm512_mask_storeu_ps(p, m, v);
  }
}
KILN_VECTOR_INLINE void store16(uint16_t* p, __mmask16 m, __m512 v) {
  const __m256i h = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
  if (m == 0xffff) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), h);
  } else {
    _mm256_mask_storeu_epi16(p, m, h);
  }
}
KILN_VECTOR_INLINE __mmask16 lanes(int64_t j, int64_t end) {
  return end - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (end - j)) - 1);
}

template <typename Data>
KILN_AVX512_BF16 void forward_vector(const GateForwardStep& s, int64_t j0, int64_t j1) {
  const int64_t u = s.units;
  for (int64_t b = 0; b < s.batch; ++b) {
    const auto [g, cp, cn, hn, y] = forward_row<Data>(s, b);
    for (int64_t j = j0; j < j1; j += 16) {
      const __mmask16 m = lanes(j, j1);
      const __m512 i = sigmoid16(load16(g + j, m)), f = sigmoid16(load16(g + u + j, m));
      const __m512 cc = tanh16(load16(g + 2 * u + j, m)), o = sigmoid16(load16(g + 3 * u + j, m));
      const __m512 c = _mm512_fmadd_ps(f, load16(cp + j, m), _mm512_mul_ps(i, cc));
      const __m512 h = _mm512_mul_ps(o, tanh16(c));
      store16(g + j, m, i), store16(g + u + j, m, f), store16(g + 2 * u + j, m, cc), store16(g + 3 * u + j, m, o);
      store16(cn + j, m, c);
      store16(hn + j, m, h);
      store16(y + j, m, h);
    }
  }
}

template <typename Data, bool kHasDy>
KILN_AVX512_BF16 void backward_vector(const GateBackwardStep& s, int64_t j0, int64_t j1) {
  const int64_t u = s.units;
  const __m512 one = splat(1.f);
  float* db = s.dbias;
  for (int64_t b = 0; b < s.batch; ++b) {
    const auto [g, cp, c, dy, dhr, dc, dg] = backward_row<Data>(s, b);
    for (int64_t j = j0; j < j1; j += 16) {
      const __mmask16 m = lanes(j, j1);
      const __m512 i = load16(g + j, m), f = load16(g + u + j, m), cc = load16(g + 2 * u + j, m);
      const __m512 o = load16(g + 3 * u + j, m);
      const __m512 tc = tanh16(load16(c + j, m));
      const __m512 dh = kHasDy ? _mm512_add_ps(load16(dy + j, m), load16(dhr + j, m)) : load16(dhr + j, m);
      const __m512 dcell = _mm512_fmadd_ps(_mm512_mul_ps(dh, o), _mm512_fnmadd_ps(tc, tc, one), load16(dc + j, m));
      const __m512 dgi = _mm512_mul_ps(_mm512_mul_ps(dcell, cc), _mm512_mul_ps(i, _mm512_sub_ps(one, i)));
      const __m512 dgf = _mm512_mul_ps(_mm512_mul_ps(dcell, load16(cp + j, m)), _mm512_mul_ps(f, _mm512_sub_ps(one, f)));
      const __m512 dgc = _mm512_mul_ps(_mm512_mul_ps(dcell, i), _mm512_fnmadd_ps(cc, cc, one));
      const __m512 dgo = _mm512_mul_ps(_mm512_mul_ps(dh, tc), _mm512_mul_ps(o, _mm512_sub_ps(one, o)));
      store16(dc + j, m, _mm512_mul_ps(dcell, f));
      store16(dg + j, m, dgi), store16(dg + u + j, m, dgf), store16(dg + 2 * u + j, m, dgc), store16(dg + 3 * u + j, m, dgo);
      store16(db + j, m, _mm512_add_ps(load16(db + j, m), dgi));
      store16(db + u + j, m, _mm512_add_ps(load16(db + u + j, m), dgf));
      store16(db + 2 * u + j, m, _mm512_add_ps(load16(db + 2 * u + j, m), dgc));
      store16(db + 3 * u + j, m, _mm512_add_ps(load16(db + 3 * u + j, m), dgo));
    }
  }
}

KILN_AVX512_BF16 void math_vector(GateFunction fn, const float* x, float* out, int64_t n) {
  for (int64_t k = 0; k < n; k += 16) {
    const __mmask16 m = lanes(k, n);
    const __m512 v = load16(x + k, m);
    store16(out + k, m, fn == GateFunction::exp ? exp16(v) : fn == GateFunction::sigmoid ? sigmoid16(v) : tanh16(v));
  }
}

void math_loops(GateFunction fn, const float* x, float* out, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    out[k] = fn == GateFunction::exp ? exp_poly(x[k]) : fn == GateFunction::sigmoid ? sigmoid(x[k]) : tanh_poly(x[k]);
  }
}

}  // namespace

// Follows oneDNN's ISA cap (DNNL_MAX_CPU_ISA, cpu::set_max_isa), so both sides of a capped
// run use the same instructions.
GateIsa gate_isa() {
  const cpu::Isa isa = cpu::effective_isa();
  return isa >= cpu::Isa::avx512_core_bf16 ? GateIsa::avx512_bf16
         : isa >= cpu::Isa::avx512_core    ? GateIsa::avx512
                                           : GateIsa::baseline;
}

void lstm_gates_forward(const GateForwardStep& s, int64_t unit_begin, int64_t unit_end, GateIsa isa) {
  switch (isa) {
    case GateIsa::avx512_bf16:
      return s.bf16 ? forward_vector<uint16_t>(s, unit_begin, unit_end) : forward_vector<float>(s, unit_begin, unit_end);
    case GateIsa::avx512: return forward_avx512(s, unit_begin, unit_end);
    case GateIsa::baseline: return forward_baseline(s, unit_begin, unit_end);
  }
}

void lstm_gates_backward(const GateBackwardStep& s, int64_t unit_begin, int64_t unit_end, GateIsa isa) {
  switch (isa) {
    case GateIsa::avx512_bf16:
      if (s.bf16) {
        return s.dy ? backward_vector<uint16_t, true>(s, unit_begin, unit_end)
                    : backward_vector<uint16_t, false>(s, unit_begin, unit_end);
      }
      return s.dy ? backward_vector<float, true>(s, unit_begin, unit_end)
                  : backward_vector<float, false>(s, unit_begin, unit_end);
    case GateIsa::avx512: return backward_avx512(s, unit_begin, unit_end);
    case GateIsa::baseline: return backward_baseline(s, unit_begin, unit_end);
  }
}

void gate_math(GateFunction fn, const float* x, float* out, int64_t n, GateIsa isa) {
  switch (isa) {
    case GateIsa::avx512_bf16: return math_vector(fn, x, out, n);
    case GateIsa::avx512:  // the loops' formulas, built for AVX-512 inside the kernels
    case GateIsa::baseline: return math_loops(fn, x, out, n);
  }
}

}  // namespace kiln::rnn_detail
