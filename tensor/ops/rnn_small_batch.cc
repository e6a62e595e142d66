#include "tensor/ops/rnn_small_batch.h"

#include <omp.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "tensor/isa_clones.h"
#include "tensor/ops/cast.h"

// The v16 helpers are always inlined, so the vector ABI warnings (-Wpsabi) do not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
// The inner loops are FMAs: -std=c++20 turns GCC's contraction of a * b + c off.
#pragma GCC optimize("fp-contract=fast")

namespace kiln::rnn_detail {
namespace {

// Sixteen floats: one AVX-512 register, two AVX2 ones or four SSE ones, whichever clone of
// the KILN_ISA_CLONES functions below runs (GCC lowers the vector type to what it has).
typedef float v16 __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;

#define KILN_INLINE inline __attribute__((always_inline))

KILN_INLINE v16 load(const float* p) {
  v16 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
KILN_INLINE void store(float* p, v16 v) { __builtin_memcpy(p, &v, sizeof v); }
KILN_INLINE v16 splat(float f) { return v16{} + f; }

// e^x to about 1 ulp (Cephes' expf polynomial); NaN stays NaN, the input is clamped to where
// the result is a normal float.
KILN_INLINE v16 exp16(v16 x) {
  const v16 hi = splat(88.3762626647949f), lo = splat(-87.3365478515625f);
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;
  const v16 magic = splat(12582912.f);  // 1.5 * 2^23: adding it rounds to an integer
  v16 n = (x * 1.44269504088896341f + magic) - magic;
  v16 r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  v16 p = splat(1.9875691500E-4f);
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * (r * r) + r + 1.f;
  // 2^n by its bits; n in [-126, 127] after the clamp (NaN's garbage n keeps p's NaN).
  v16i bits = (__builtin_convertvector(n, v16i) + 127) << 23;
  v16 scale;
  __builtin_memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

KILN_INLINE v16 sigmoid16(v16 x) { return 1.f / (1.f + exp16(-x)); }

// Cephes' tanhf: an odd polynomial below 0.625, 1 - 2 / (e^2|x| + 1) above, both to ~1e-7.
KILN_INLINE v16 tanh16(v16 x) {
  const v16 a = x < 0.f ? -x : x;
  const v16 z = x * x;
  v16 p = splat(-5.70498872745E-3f);
  p = p * z + 2.06390887954E-2f;
  p = p * z - 5.37397155531E-2f;
  p = p * z + 1.33314422036E-1f;
  p = p * z - 3.33332819422E-1f;
  const v16 small = p * z * x + x;
  v16 big = 1.f - 2.f / (exp16(a + a) + 1.f);
  big = x < 0.f ? -big : big;
  return a < 0.625f ? small : big;
}

// out[r, :cols] = init[r, :cols] + a[r, :k] @ w[:k, :cols] for `rows` rows (row strides lda,
// ldw, ldi, ldo; ldi 0 repeats one init row, a bias). Blocks of 64 columns, two rows at a
// time, keep eight independent FMA chains; the block's weights stay in L1 across rows.
KILN_ISA_CLONES void gemm_rows(const float* a, int64_t lda, int64_t rows, int64_t k, const float* w, int64_t ldw,
                               int64_t cols, const float* init, int64_t ldi, float* out, int64_t ldo) {
  int64_t c = 0;
  for (; c + 4 * kLanes <= cols; c += 4 * kLanes) {
    int64_t r = 0;
    for (; r + 2 <= rows; r += 2) {
      const float *a0 = a + r * lda, *a1 = a0 + lda;
      const float *i0 = init + r * ldi + c, *i1 = i0 + ldi;
      v16 s0 = load(i0), s1 = load(i0 + 16), s2 = load(i0 + 32), s3 = load(i0 + 48);
      v16 t0 = load(i1), t1 = load(i1 + 16), t2 = load(i1 + 32), t3 = load(i1 + 48);
      for (int64_t j = 0; j < k; ++j) {
        const float* wr = w + j * ldw + c;
        const v16 w0 = load(wr), w1 = load(wr + 16), w2 = load(wr + 32), w3 = load(wr + 48);
        const float x0 = a0[j], x1 = a1[j];
        s0 += x0 * w0, s1 += x0 * w1, s2 += x0 * w2, s3 += x0 * w3;
        t0 += x1 * w0, t1 += x1 * w1, t2 += x1 * w2, t3 += x1 * w3;
      }
      float *o0 = out + r * ldo + c, *o1 = o0 + ldo;
      store(o0, s0), store(o0 + 16, s1), store(o0 + 32, s2), store(o0 + 48, s3);
      store(o1, t0), store(o1 + 16, t1), store(o1 + 32, t2), store(o1 + 48, t3);
    }
    for (; r < rows; ++r) {  // one row: even and odd j in chains of their own
      const float* a0 = a + r * lda;
      const float* i0 = init + r * ldi + c;
      v16 s0 = load(i0), s1 = load(i0 + 16), s2 = load(i0 + 32), s3 = load(i0 + 48);
      v16 t0{}, t1{}, t2{}, t3{};
      int64_t j = 0;
      for (; j + 2 <= k; j += 2) {
        const float* wr = w + j * ldw + c;
        const float* wn = wr + ldw;
        const float x0 = a0[j], x1 = a0[j + 1];
        s0 += x0 * load(wr), s1 += x0 * load(wr + 16), s2 += x0 * load(wr + 32), s3 += x0 * load(wr + 48);
        t0 += x1 * load(wn), t1 += x1 * load(wn + 16), t2 += x1 * load(wn + 32), t3 += x1 * load(wn + 48);
      }
      if (j < k) {
        const float* wr = w + j * ldw + c;
        const float x0 = a0[j];
        s0 += x0 * load(wr), s1 += x0 * load(wr + 16), s2 += x0 * load(wr + 32), s3 += x0 * load(wr + 48);
      }
      float* o0 = out + r * ldo + c;
      store(o0, s0 + t0), store(o0 + 16, s1 + t1), store(o0 + 32, s2 + t2), store(o0 + 48, s3 + t3);
    }
  }
  for (; c + kLanes <= cols; c += kLanes) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* a0 = a + r * lda;
      v16 s = load(init + r * ldi + c), t{};
      int64_t j = 0;
      for (; j + 2 <= k; j += 2) {
        s += a0[j] * load(w + j * ldw + c);
        t += a0[j + 1] * load(w + (j + 1) * ldw + c);
      }
      if (j < k) s += a0[j] * load(w + j * ldw + c);
      store(out + r * ldo + c, s + t);
    }
  }
  for (int64_t r = 0; r < rows && c < cols; ++r) {
    const float* a0 = a + r * lda;
    for (int64_t cc = c; cc < cols; ++cc) {
      float s = init[r * ldi + cc];
      for (int64_t j = 0; j < k; ++j) s += a0[j] * w[j * ldw + cc];
      out[r * ldo + cc] = s;
    }
  }
}

// One pass's buffers. Gate g of unit j sits at column g * up + j of xproj and gates (up: U
// rounded up to whole vectors, the padding zero), so the gates of a vector of units line up.
struct Pass {
  RnnCell cell;
  int64_t n, t, in, u, up, gates;
  const float *x, *wl, *wi, *bias, *h0, *c0;  // bias: oneDNN's [bias gates, U]; c0: LSTM only
  float *xproj;                               // [n * t, gates * up]: x @ kernel + bias, every step
  float *gate;                                // [n, gates * up]: this step's
  float *h, *c;                               // [2, n, up] (this step's and the next), [n, up]
  float *y, *h_out, *c_out;
};

KILN_INLINE void lstm_cell(const float* g, int64_t up, float* c, float* h) {
  const v16 i = sigmoid16(load(g)), f = sigmoid16(load(g + up)), cc = tanh16(load(g + 2 * up));
  const v16 o = sigmoid16(load(g + 3 * up));
  const v16 cn = f * load(c) + i * cc;
  store(c, cn);
  store(h, o * tanh16(cn));
}

// Keras's GRU(reset_after=True): xh (x's projection with the input bias) stays outside r.
KILN_INLINE void gru_cell(const float* g, const float* xh, int64_t up, const float* h_prev, float* h) {
  const v16 z = sigmoid16(load(g)), r = sigmoid16(load(g + up));
  const v16 hh = tanh16(load(xh) + r * load(g + 2 * up));
  store(h, z * load(h_prev) + (1.f - z) * hh);
}

// The units [u0, u1) of every step, u0 a whole number of vectors: each thread of the team
// runs its own units, and the barrier after each step lets every thread read the whole new h.
KILN_ISA_CLONES void run_units(const Pass& p, int64_t u0, int64_t u1) {
  const int64_t n = p.n, t = p.t, u = p.u, up = p.up, gu = p.gates * u, gup = p.gates * up;
  const int64_t width = u1 - u0, padded_end = u1 == u ? up : u1;
  const bool gru = p.cell == RnnCell::gru;
  if (width > 0) {
    for (int64_t g = 0; g < p.gates; ++g) {
      gemm_rows(p.x, p.in, n * t, p.in, p.wl + g * u + u0, gu, width, p.bias + g * u + u0, 0,
                p.xproj + g * up + u0, gup);
    }
    // The padding starts at zero too: the cells then keep it finite (it is never read back).
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t j = u0; j < padded_end; ++j) {
        p.h[r * up + j] = p.h0 && j < u ? p.h0[r * u + j] : 0.f;
        if (p.c) p.c[r * up + j] = p.c0 && j < u ? p.c0[r * u + j] : 0.f;
      }
    }
  }
#pragma omp barrier
  for (int64_t s = 0; s < t; ++s) {
    const float* h_prev = p.h + (s & 1) * n * up;
    float* h_next = p.h + ((s + 1) & 1) * n * up;
    if (width > 0) {
      for (int64_t g = 0; g < p.gates; ++g) {
        const bool recurrent_bias = gru && g == 2;  // linear-before-reset's own bias
        const float* init = recurrent_bias ? p.bias + 3 * u + u0 : p.xproj + s * gup + g * up + u0;
        gemm_rows(h_prev, up, n, u, p.wi + g * u + u0, gu, width, init, recurrent_bias ? 0 : t * gup,
                  p.gate + g * up + u0, gup);
      }
      for (int64_t r = 0; r < n; ++r) {
        const float* g = p.gate + r * gup;
        for (int64_t j = u0; j < padded_end; j += kLanes) {
          float* h = h_next + r * up + j;
          switch (p.cell) {
            case RnnCell::lstm: lstm_cell(g + j, up, p.c + r * up + j, h); break;
            case RnnCell::gru:
              gru_cell(g + j, p.xproj + (r * t + s) * gup + 2 * up + j, up, h_prev + r * up + j, h);
              break;
            case RnnCell::simple_rnn: store(h, tanh16(load(g + j))); break;
          }
        }
        std::copy(h_next + r * up + u0, h_next + r * up + u1, p.y + (r * t + s) * u + u0);
      }
    }
#pragma omp barrier
  }
  const float* h_last = p.h + (t & 1) * n * up;
  for (int64_t r = 0; r < n && width > 0; ++r) {
    std::copy(h_last + r * up + u0, h_last + r * up + u1, p.h_out + r * u + u0);
    if (p.c_out) std::copy(p.c + r * up + u0, p.c + r * up + u1, p.c_out + r * u + u0);
  }
}

Tensor as_f32(const Tensor& t) { return t.dtype() == DType::f32 ? t : cast(t, DType::f32); }

}  // namespace

// From benchmarks/rnn_small_batch.cc (LSTM(128) and GRU(128), 28 steps, AMD EPYC Zen 5,
// OMP_NUM_THREADS=2, two runs under load 4-5 on 2 cores): oneDNN time / kernel time 1.6-4.5x
// at batch 1 to 8, 0.3-1.5x from 16 (LSTM below 1x); two threads lost to one at every batch
// up to 4 in both runs and at 8 in one of them, so a team is kept for bigger products.
bool small_batch_rnn_wins(int64_t n, int64_t u) { return n <= 8 && u <= 512; }

int small_batch_rnn_threads(int64_t n, int64_t u) {
  if (n * u < 2048 || u < 2 * kLanes) return 1;
  return std::max(1, omp_get_max_threads());
}

SmallBatchRnnWeights prepare_small_batch_rnn(RnnCell cell, const RnnWeights& w) {
  auto dense_f32 = [](const Tensor& t) { return as_f32(t).is_contiguous() ? as_f32(t) : as_f32(t).clone_detached(); };
  return {cell, dense_f32(w.layer), dense_f32(w.iter), dense_f32(w.bias)};
}

void small_batch_rnn_run(const SmallBatchRnnWeights& w, const float* x, int64_t n, int64_t t, const float* h0,
                         const float* c0, float* y, float* h_out, float* c_out, int threads) {
  const RnnCell cell = w.cell;
  const int64_t in = w.layer.shape()[0], u = w.iter.shape()[0];
  const int gates = gate_count(cell);
  if (t < 1 || n < 1) throw std::logic_error("small_batch_rnn_run: empty input of " + std::to_string(n) + " rows, " +
                                             std::to_string(t) + " steps");
  const int64_t up = (u + kLanes - 1) / kLanes * kLanes;
  // Only the padding between u and up must start at zero (the kernel writes every other column).
  auto scratch = [&](const Shape& shape) { return up == u ? Tensor::empty(shape) : Tensor::zeros(shape); };
  Tensor xproj = scratch({n * t, gates * up}), gate = scratch({n, gates * up});
  Tensor h = Tensor::empty({2, n, up}), c = has_cell_state(cell) ? Tensor::empty({n, up}) : Tensor();
  Pass p{cell, n, t, in, u, up, gates, x, w.layer.data<float>(), w.iter.data<float>(), w.bias.data<float>(),
         h0, has_cell_state(cell) ? c0 : nullptr, xproj.data<float>(), gate.data<float>(), h.data<float>(),
         c.defined() ? c.data<float>() : nullptr, y, h_out, has_cell_state(cell) ? c_out : nullptr};
  const int64_t vectors = up / kLanes;
  const int team = static_cast<int>(std::min<int64_t>(threads > 0 ? threads : small_batch_rnn_threads(n, u), vectors));
  if (team <= 1) {
    run_units(p, 0, u);
  } else {
#pragma omp parallel num_threads(team)
    {
      const int64_t k = omp_get_thread_num(), count = omp_get_num_threads();
      const int64_t v0 = vectors * k / count, v1 = vectors * (k + 1) / count;
      run_units(p, std::min(u, v0 * kLanes), std::min(u, v1 * kLanes));
    }
  }
}

RnnPass small_batch_rnn_forward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0,
                                const Tensor& c0, int threads) {
  const int64_t n = x.shape()[0], t = x.shape()[1], u = w.iter.shape()[0];
  const Tensor xf = as_f32(x), hf = h0.defined() ? as_f32(h0) : Tensor();
  RnnPass out;
  Tensor y = Tensor::empty({n, t, u}), h = Tensor::empty({n, u});
  if (has_cell_state(cell)) out.c = Tensor::empty({n, u});
  small_batch_rnn_run(prepare_small_batch_rnn(cell, w), xf.data<float>(), n, t, hf.defined() ? hf.data<float>() : nullptr,
                      has_cell_state(cell) && c0.defined() ? c0.data<float>() : nullptr, y.data<float>(), h.data<float>(),
                      out.c.defined() ? out.c.data<float>() : nullptr, threads);
  out.y = x.dtype() == DType::f32 ? y : cast(y, x.dtype());
  out.h = x.dtype() == DType::f32 ? h : cast(h, x.dtype());
  return out;
}

}  // namespace kiln::rnn_detail
