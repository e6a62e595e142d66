#include "tensor/ops/lstm_gate_kernels.h"

#include <bit>
#include <cstdint>

#include "tensor/onednn/isa.h"

namespace kiln::rnn_detail {
namespace {

#define KILN_INLINE inline __attribute__((always_inline))
// The same loops built for AVX-512 (what oneDNN's own kernels use on this machine); the
// baseline build serves CPUs without it.
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

template <typename Data>
KILN_INLINE void forward_body(const GateForwardStep& s, int64_t j0, int64_t j1) {
  const int64_t u = s.units;
  for (int64_t b = 0; b < s.batch; ++b) {
    float* g = s.gates + b * 4 * u;
    const float* cp = s.c_prev + b * u;
    float* cn = s.c_next + b * u;
    Data* hn = static_cast<Data*>(s.h_next) + b * s.h_row_stride;
    Data* y = static_cast<Data*>(s.y) + b * s.y_row_stride;
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
    const float* g = s.gates + b * 4 * u;
    const float* cp = s.c_prev + b * u;
    const float* c = s.c + b * u;
    const float* dy = kHasDy ? s.dy + b * s.dy_row_stride : nullptr;
    const float* dhr = s.dh_recurrent + b * u;
    float* dc = s.dc + b * u;
    Data* dg = static_cast<Data*>(s.dgates) + b * 4 * u;
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

// Follows oneDNN's ISA cap (DNNL_MAX_CPU_ISA, cpu::set_max_isa), so both sides of a capped
// run use the same instructions.
bool has_avx512() { return cpu::effective_isa() >= cpu::Isa::avx512_core; }

}  // namespace

void lstm_gates_forward(const GateForwardStep& s, int64_t unit_begin, int64_t unit_end) {
  if (has_avx512()) {
    forward_avx512(s, unit_begin, unit_end);
  } else {
    forward_baseline(s, unit_begin, unit_end);
  }
}

void lstm_gates_backward(const GateBackwardStep& s, int64_t unit_begin, int64_t unit_end) {
  if (has_avx512()) {
    backward_avx512(s, unit_begin, unit_end);
  } else {
    backward_baseline(s, unit_begin, unit_end);
  }
}

void gate_exp(const float* x, float* out, int64_t n) {
  for (int64_t k = 0; k < n; ++k) out[k] = exp_poly(x[k]);
}
void gate_sigmoid(const float* x, float* out, int64_t n) {
  for (int64_t k = 0; k < n; ++k) out[k] = sigmoid(x[k]);
}
void gate_tanh(const float* x, float* out, int64_t n) {
  for (int64_t k = 0; k < n; ++k) out[k] = tanh_poly(x[k]);
}

}  // namespace kiln::rnn_detail
