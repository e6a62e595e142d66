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
#define KILN_INLINE_LAMBDA __attribute__((always_inline))

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

// tanh(x) = 2 sigmoid(2x) - 1: one exp and one division (Cephes' tanhf adds an odd polynomial
// for |x| < 0.625, which only buys relative accuracy near 0; the error here stays below 2e-7
// absolute, and the gates measured a quarter of the LSTM pass's time).
KILN_INLINE v16 tanh16(v16 x) { return 2.f / (1.f + exp16(-2.f * x)) - 1.f; }

// How a cell's weights sit in its panels (see SmallBatchRnnWeights): kCols vectors of gate
// columns per x row and per h row (gate_count), summed into kAccs accumulators per batch row
// (bias_gate_count, as the packed bias). GRU's
// linear-before-reset h gate keeps x's part (accumulator 2) and h's part (3) apart; the other
// gates add both. kRows batch rows at a time keep 16 (LSTM, GRU) or 8 (SimpleRNN) independent
// FMA chains while each weight vector loaded serves every row.
template <RnnCell kCell>
struct CellShape;
template <>
struct CellShape<RnnCell::lstm> {
  static constexpr int kCols = 4, kAccs = 4, kRows = 4;
  static constexpr int h_acc(int c) { return c; }
};
template <>
struct CellShape<RnnCell::gru> {
  static constexpr int kCols = 3, kAccs = 4, kRows = 4;
  static constexpr int h_acc(int c) { return c == 2 ? 3 : c; }
};
template <>
struct CellShape<RnnCell::simple_rnn> {
  static constexpr int kCols = 1, kAccs = 1, kRows = 8;
  static constexpr int h_acc(int c) { return c; }
};

// One pass: the prepared weights and the caller's buffers. h holds two [n, up] state
// buffers (this step's and the next), c [n, up]; up is U rounded up to whole vectors, and the
// padding lanes stay finite (zero weights and bias) and are never read as a product's input.
struct Pass {
  RnnCell cell;
  int64_t n, t, in, u, up, panel;  // panel: floats per unit block's panel
  const float *x, *panels, *bias, *h0, *c0;
  float *h, *c, *y, *h_out, *c_out;
};

// The stores of a block of 16 units: h and c whole vectors (padding included), y only U's.
KILN_INLINE void store_units(float* dst, v16 v, int64_t units) {
  if (units >= kLanes) {
    store(dst, v);
  } else {
    float lanes[kLanes];
    store(lanes, v);
    std::copy(lanes, lanes + units, dst);
  }
}

// Step s of R rows from r0 for the 16 units of block b: acc = bias + x_s @ Wx + h @ Wh from
// the block's panel (which stays in L1 across the row groups of a step), then the cell. Fewer
// rows than kRows split the sums over alternate j (K sets of accumulators) so that about 16
// FMA chains stay independent: one row's four LSTM chains alone would wait on FMA latency.
template <RnnCell kCell, int R>
KILN_INLINE void step_rows(const Pass& p, int64_t s, int64_t r0, int64_t b, const float* h_prev, float* h_next) {
  using S = CellShape<kCell>;
  constexpr int C = S::kCols, A = S::kAccs;
  constexpr int K = std::clamp(16 / (R * A), 1, 4);
  constexpr int64_t W = C * kLanes;
  v16 acc[K][R][A];
  const float* bias = p.bias + b * A * kLanes;
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int a = 0; a < A; ++a) {
      acc[0][r][a] = load(bias + a * kLanes);
#pragma GCC unroll 4
      for (int q = 1; q < K; ++q) acc[q][r][a] = v16{};
    }
  }
  const float* w = p.panels + b * p.panel;
  const float* xr[R];
  const float* hr[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    xr[r] = p.x + ((r0 + r) * p.t + s) * p.in;
    hr[r] = h_prev + (r0 + r) * p.up;
  }
  // acc[q] += a[r][j] * panel row j, for the K rows from j (q = 0..K-1); the x part's columns
  // go to the same accumulators, the h part's as h_acc says.
  auto multiply = [&](const float* const* a, int64_t j, const float* wj, int q, bool h_part) KILN_INLINE_LAMBDA {
    v16 wv[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) wv[c] = load(wj + c * kLanes);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const float v = a[r][j];
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[q][r][h_part ? S::h_acc(c) : c] += v * wv[c];
    }
  };
  auto product = [&](const float* const* a, int64_t k, bool h_part) KILN_INLINE_LAMBDA {
    int64_t j = 0;
    for (; j + K <= k; j += K, w += K * W) {
#pragma GCC unroll 4
      for (int q = 0; q < K; ++q) multiply(a, j + q, w + q * W, q, h_part);
    }
    for (; j < k; ++j, w += W) multiply(a, j, w, 0, h_part);
  };
  product(xr, p.in, false);
  product(hr, p.u, true);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int a = 0; a < A; ++a) {
#pragma GCC unroll 4
      for (int q = 1; q < K; ++q) acc[0][r][a] += acc[q][r][a];
    }
  }
  const int64_t j0 = b * kLanes, units = std::min(kLanes, p.u - j0);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r;
    float* h = h_next + row * p.up + j0;
    v16 hv;
    if constexpr (kCell == RnnCell::lstm) {
      float* c = p.c + row * p.up + j0;
      const v16 i = sigmoid16(acc[0][r][0]), f = sigmoid16(acc[0][r][1]), g = tanh16(acc[0][r][2]);
      const v16 o = sigmoid16(acc[0][r][3]);
      const v16 cn = f * load(c) + i * g;
      store(c, cn);
      hv = o * tanh16(cn);
    } else if constexpr (kCell == RnnCell::gru) {  // Keras's GRU(reset_after=True)
      const v16 z = sigmoid16(acc[0][r][0]), rr = sigmoid16(acc[0][r][1]);
      const v16 hh = tanh16(acc[0][r][2] + rr * acc[0][r][3]);
      hv = z * load(h_prev + row * p.up + j0) + (1.f - z) * hh;
    } else {
      hv = tanh16(acc[0][r][0]);
    }
    store(h, hv);
    if (p.y) store_units(p.y + (row * p.t + s) * p.u + j0, hv, units);
  }
}

// The rows' tail below kRows, as one block of its own size.
template <RnnCell kCell, int R>
KILN_INLINE void step_tail(const Pass& p, int64_t s, int64_t r0, int64_t rows, int64_t b, const float* h_prev,
                           float* h_next) {
  if constexpr (R > 0) {
    if (rows == R) {
      step_rows<kCell, R>(p, s, r0, b, h_prev, h_next);
    } else {
      step_tail<kCell, R - 1>(p, s, r0, rows, b, h_prev, h_next);
    }
  }
}

template <RnnCell kCell>
KILN_INLINE void step_cell(const Pass& p, int64_t s, int64_t r0, int64_t r1, int64_t b0, int64_t b1) {
  constexpr int R = CellShape<kCell>::kRows;
  const float* h_prev = p.h + (s & 1) * p.n * p.up;
  float* h_next = p.h + ((s + 1) & 1) * p.n * p.up;
  for (int64_t b = b0; b < b1; ++b) {
    int64_t r = r0;
    for (; r + R <= r1; r += R) step_rows<kCell, R>(p, s, r, b, h_prev, h_next);
    step_tail<kCell, R - 1>(p, s, r, r1 - r, b, h_prev, h_next);
  }
}

// Step s of rows [r0, r1) and unit blocks [b0, b1): what one thread does per step.
KILN_ISA_CLONES void run_step(const Pass& p, int64_t s, int64_t r0, int64_t r1, int64_t b0, int64_t b1) {
  switch (p.cell) {
    case RnnCell::lstm: step_cell<RnnCell::lstm>(p, s, r0, r1, b0, b1); break;
    case RnnCell::gru: step_cell<RnnCell::gru>(p, s, r0, r1, b0, b1); break;
    case RnnCell::simple_rnn: step_cell<RnnCell::simple_rnn>(p, s, r0, r1, b0, b1); break;
  }
}

// The states of rows [r0, r1), units [j0, j1) (padding included) before step 0, and after the
// last one.
void start_states(const Pass& p, int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t j = j0; j < j1; ++j) {
      p.h[r * p.up + j] = p.h0 && j < p.u ? p.h0[r * p.u + j] : 0.f;
      if (p.c) p.c[r * p.up + j] = p.c0 && j < p.u ? p.c0[r * p.u + j] : 0.f;
    }
  }
}

void finish_states(const Pass& p, int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
  const float* h_last = p.h + (p.t & 1) * p.n * p.up;
  j1 = std::min(j1, p.u);
  for (int64_t r = r0; r < r1 && j0 < j1; ++r) {
    if (p.h_out) std::copy(h_last + r * p.up + j0, h_last + r * p.up + j1, p.h_out + r * p.u + j0);
    if (p.c_out) std::copy(p.c + r * p.up + j0, p.c + r * p.up + j1, p.c_out + r * p.u + j0);
  }
}

// Rows [r0, r1), every unit, every step: no other thread reads these rows' states.
void run_rows(const Pass& p, int64_t r0, int64_t r1) {
  const int64_t blocks = p.up / kLanes;
  start_states(p, r0, r1, 0, p.up);
  for (int64_t s = 0; s < p.t; ++s) run_step(p, s, r0, r1, 0, blocks);
  finish_states(p, r0, r1, 0, p.up);
}

// Unit blocks [b0, b1) of every row: each step reads every unit of the previous h, so the
// team meets at a barrier after each step.
void run_units(const Pass& p, int64_t b0, int64_t b1) {
  start_states(p, 0, p.n, b0 * kLanes, b1 * kLanes);
#pragma omp barrier
  for (int64_t s = 0; s < p.t; ++s) {
    run_step(p, s, 0, p.n, b0, b1);
#pragma omp barrier
  }
  finish_states(p, 0, p.n, b0 * kLanes, b1 * kLanes);
}

Tensor as_f32(const Tensor& t) { return t.dtype() == DType::f32 ? t : cast(t, DType::f32); }
Tensor dense_f32(const Tensor& t) {
  const Tensor f = as_f32(t);
  return f.is_contiguous() ? f : f.clone_detached();
}

}  // namespace

// From benchmarks/rnn_small_batch.cc, 2026-12-05 19:53 UTC, AMD EPYC Zen 5 (2 cores, AVX-512),
// OMP_NUM_THREADS=2, under the timing lock at nice -20 with load average 5.3-6.1 (other
// builds at nice 19), 28 steps of 28 features, best of 3, oneDNN time / chosen kernel time:
//   LSTM(128)      b1 1.86x  b4 1.90x  b8 1.29x  b32 1.12x  b128 1.05x  b256 1.11x
//   GRU(128)       b1 1.99x  b4 2.00x  b8 1.53x  b32 1.31x  b128 1.31x  b256 1.32x
//   SimpleRNN(128) b1 3.24x  b4 1.78x  b8 1.59x  b16 1.08x  b32 0.99x  b256 0.91x
//   LSTM, U = 4, 32, 512 at b1..b256: 2.9-20x, 1.3-3.5x, 1.02-1.20x.
// Two later runs (20:11, load 3-5; 20:27, load 1-4) gave LSTM b32 1.03x and 1.29x, b128 1.03x
// and 1.35x, GRU b32 1.12x and 1.11x: from 16 rows the LSTM's margin is within the load's
// noise (both sides are FMA-bound there; the kernel's products run near the FMA peak and its
// gates take about a sixth of the pass). Preparing the weights each call (the ops) costs
// 10-15 us more at small batches, which kept SimpleRNN at b16 level with oneDNN in the first
// run; beyond 256 rows and 512 units nothing was measured.
// SimpleRNN's one gate column leaves each weight vector loaded for a single FMA per row.
bool small_batch_rnn_wins(RnnCell cell, int64_t n, int64_t u) {
  return u <= 512 && n <= (cell == RnnCell::simple_rnn ? 8 : 256);
}

// Same run, the unit split (a barrier per step) against the row split (none), 2 threads, us
// per pass: LSTM b1 39.8 / 64.5, b2 43.7 / 70.4, b4 52.0 / 72.0, b8 95.8 / 96.1, b16 174 /
// 174; GRU b4 40.2 / 54.2, b8 72.9 / 67.2; SimpleRNN b8 39.8 / 29.6. With fewer than a
// 4-row block per thread, splitting rows makes each thread stream all the weights from L2
// for too few rows; splitting units halves that. A team that meets at a barrier every step
// degrades when another process takes one of its cores: in a second run (load 3-5) the unit
// split still won at b1 for LSTM(128) (42.3 us against 66.8 on one thread) and GRU(128) (44.0
// against 50.3), whose rows hold 80k and 60k multiply-adds a step, but lost for
// SimpleRNN(128) (31.1 against 16.7; 20k a row a step, 11.4 against 15.7 quietly). So units
// are split only below 4 rows a thread and from 40k multiply-adds a row a step; otherwise
// the rows are (one thread for one row).
SmallBatchRnnThreads small_batch_rnn_threads(RnnCell cell, int64_t n, int64_t in, int64_t u) {
  const int threads = omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads());
  const int64_t row_step_work = gate_count(cell) * u * (in + u);
  if (threads == 1) return {1, SmallBatchSplit::rows};
  if (n >= 4 * threads) return {threads, SmallBatchSplit::rows};
  if (u > kLanes && row_step_work >= 40000) return {threads, SmallBatchSplit::units};
  return {static_cast<int>(std::min<int64_t>(threads, n)), SmallBatchSplit::rows};
}

SmallBatchRnnWeights prepare_small_batch_rnn(RnnCell cell, const RnnWeights& w) {
  const Tensor layer = dense_f32(w.layer), iter = dense_f32(w.iter);
  const Tensor bias = dense_f32(w.bias);
  const int64_t in = layer.shape()[0], u = iter.shape()[0], blocks = (u + kLanes - 1) / kLanes;
  const int gates = gate_count(cell), accs = bias_gate_count(cell);
  if (layer.shape() != Shape{in, gates * u} || iter.shape() != Shape{u, gates * u} ||
      bias.shape() != Shape{accs, u}) {
    throw std::logic_error("prepare_small_batch_rnn: " + std::string(cell_name(cell)) + " weights " +
                           layer.describe() + ", " + iter.describe() + ", " + bias.describe() + " do not agree");
  }
  SmallBatchRnnWeights out{cell, in, u, Tensor::zeros({blocks, in + u, gates, kLanes}),
                           Tensor::zeros({blocks, accs, kLanes})};
  const float *l = layer.data<float>(), *i = iter.data<float>(), *bs = bias.data<float>();
  float *panels = out.panels.data<float>(), *packed_bias = out.bias.data<float>();
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t units = std::min(kLanes, u - b * kLanes);
    for (int64_t j = 0; j < in + u; ++j) {
      const float* row = j < in ? l + j * gates * u : i + (j - in) * gates * u;
      for (int c = 0; c < gates; ++c) {
        std::copy_n(row + c * u + b * kLanes, units, panels + ((b * (in + u) + j) * gates + c) * kLanes);
      }
    }
    for (int a = 0; a < accs; ++a) {
      std::copy_n(bs + a * u + b * kLanes, units, packed_bias + (b * accs + a) * kLanes);
    }
  }
  return out;
}

void small_batch_rnn_run(const SmallBatchRnnWeights& w, const float* x, int64_t n, int64_t t, const float* h0,
                         const float* c0, float* y, float* h_out, float* c_out, int threads, SmallBatchSplit split) {
  if (t < 1 || n < 1) throw std::logic_error("small_batch_rnn_run: empty input of " + std::to_string(n) + " rows, " +
                                             std::to_string(t) + " steps");
  const RnnCell cell = w.cell;
  const bool lstm = has_cell_state(cell);
  const int64_t u = w.u, up = (u + kLanes - 1) / kLanes * kLanes, blocks = up / kLanes;
  Tensor h = Tensor::empty({2, n, up}), c = lstm ? Tensor::empty({n, up}) : Tensor();
  const Pass p{cell,      n,        t,         w.in,      u,  up, (w.in + u) * gate_count(cell) * kLanes, x,
               w.panels.data<float>(), w.bias.data<float>(), h0, lstm ? c0 : nullptr, h.data<float>(),
               lstm ? c.data<float>() : nullptr, y, h_out, lstm ? c_out : nullptr};
  const SmallBatchRnnThreads chosen = small_batch_rnn_threads(cell, n, w.in, u);
  int team = threads > 0 ? threads : chosen.threads;
  if (split == SmallBatchSplit::choose) {
    split = threads <= 0 ? chosen.split : n >= threads ? SmallBatchSplit::rows : SmallBatchSplit::units;
  }
  team = static_cast<int>(std::min<int64_t>(team, split == SmallBatchSplit::rows ? n : blocks));
  if (team <= 1) {
    run_rows(p, 0, n);
    return;
  }
#pragma omp parallel num_threads(team)
  {
    const int64_t k = omp_get_thread_num(), count = omp_get_num_threads();
    if (split == SmallBatchSplit::rows) {
      run_rows(p, n * k / count, n * (k + 1) / count);
    } else {
      run_units(p, blocks * k / count, blocks * (k + 1) / count);
    }
  }
}

RnnPass small_batch_rnn_forward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0,
                                const Tensor& c0, int threads, SmallBatchSplit split) {
  const int64_t n = x.shape()[0], t = x.shape()[1], u = w.iter.shape()[0];
  const Tensor xf = dense_f32(x), hf = h0.defined() ? dense_f32(h0) : Tensor();
  const Tensor cf = has_cell_state(cell) && c0.defined() ? dense_f32(c0) : Tensor();
  RnnPass out;
  Tensor y = Tensor::empty({n, t, u}), h = Tensor::empty({n, u});
  if (has_cell_state(cell)) out.c = Tensor::empty({n, u});
  small_batch_rnn_run(prepare_small_batch_rnn(cell, w), xf.data<float>(), n, t,
                      hf.defined() ? hf.data<float>() : nullptr, cf.defined() ? cf.data<float>() : nullptr,
                      y.data<float>(), h.data<float>(), out.c.defined() ? out.c.data<float>() : nullptr, threads,
                      split);
  out.y = x.dtype() == DType::f32 ? y : cast(y, x.dtype());
  out.h = x.dtype() == DType::f32 ? h : cast(h, x.dtype());
  return out;
}

}  // namespace kiln::rnn_detail
