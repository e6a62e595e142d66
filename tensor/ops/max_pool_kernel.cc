#include "tensor/ops/max_pool_kernel.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/onednn/profiler.h"

namespace kiln::detail {
namespace {

// Below this many window reads a pooling runs on the calling thread: a fork/join costs more.
constexpr int64_t kParallelWork = 1 << 15;

#define KILN_INLINE inline __attribute__((always_inline))

// ---- one window cell across the channels
//
// The loops mix f32 (or bf16) with the u8 argmax, so GCC vectorizes them 64 channels at a
// time and runs the 16 to 64 channels of typical CNN layers in its scalar tail, or not at
// all where a load is conditional. So the AVX-512 versions are written out (16 channels per
// step, the tail under a mask) and picked at run time; the portable loops serve other CPUs.
// Both are inlined into whole-row loops below: one call per output row.
//   take_max: m = x where x > m or x is NaN, and arg = cell there (arg null: no backward).
//   route:    dx = dy where arg == cell, else 0 (non-overlapping windows: written once).
//   accumulate: acc += dy where arg == cell (overlapping windows add up in f32).

struct Portable {
  static KILN_INLINE float value(float v) { return v; }
  static KILN_INLINE float value(uint16_t v) { return bf16::to_float(v); }
  template <typename T>
  static KILN_INLINE void take_max(const T* x, T* m, uint8_t* arg, uint8_t cell, int64_t c) {
    for (int64_t i = 0; i < c; ++i) {
      float v = value(x[i]);
      if (v > value(m[i]) || v != v) {
        m[i] = x[i];
        if (arg) arg[i] = cell;
      }
    }
  }
  template <typename T>
  static KILN_INLINE void route(const T* dy, const uint8_t* arg, uint8_t cell, T* dx, int64_t c) {
    for (int64_t i = 0; i < c; ++i) dx[i] = arg[i] == cell ? dy[i] : T(0);
  }
  template <typename T>
  static KILN_INLINE void accumulate(const T* dy, const uint8_t* arg, uint8_t cell, float* acc, int64_t c) {
    for (int64_t i = 0; i < c; ++i) {
      if (arg[i] == cell) acc[i] += value(dy[i]);
    }
  }
};

#if defined(__GNUC__) && defined(__x86_64__)
#define KILN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define KILN_HAVE_AVX512_POOL 1
// GCC's own headers trip -Wmaybe-uninitialized in the masked bf16 widening.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

struct Avx512 {
  // Lanes [i, i + 16) that exist.
  static KILN_AVX512 inline __mmask16 lanes(int64_t i, int64_t c) {
    return c - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (c - i)) - 1);
  }
  static KILN_AVX512 inline __m512 load(__mmask16 k, const float* p) { return _mm512_maskz_loadu_ps(k, p); }
  static KILN_AVX512 inline __m512 load(__mmask16 k, const uint16_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16));
  }
  static KILN_AVX512 inline void copy(__mmask16 k, const float* from, float* to) {
    _mm512_mask_storeu_ps(to, k, _mm512_maskz_loadu_ps(k, from));
  }
  static KILN_AVX512 inline void copy(__mmask16 k, const uint16_t* from, uint16_t* to) {
    _mm256_mask_storeu_epi16(to, k, _mm256_maskz_loadu_epi16(k, from));
  }
  static KILN_AVX512 inline __mmask16 hits(__mmask16 k, const uint8_t* arg, __m128i cells) {
    return _mm_mask_cmpeq_epi8_mask(k, _mm_maskz_loadu_epi8(k, arg), cells);
  }
  template <typename T>
  static KILN_AVX512 inline void take_max(const T* x, T* m, uint8_t* arg, uint8_t cell, int64_t c) {
    const __m128i cells = _mm_set1_epi8(static_cast<char>(cell));
    for (int64_t i = 0; i < c; i += 16) {
      __mmask16 k = lanes(i, c);
      __m512 v = load(k, x + i), cur = load(k, m + i);
      __mmask16 take = k & (_mm512_cmp_ps_mask(v, cur, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
      copy(take, x + i, m + i);
      if (arg) _mm_mask_storeu_epi8(arg + i, take, cells);
    }
  }
  template <typename T>
  static KILN_AVX512 inline void route(const T* dy, const uint8_t* arg, uint8_t cell, T* dx, int64_t c) {
    const __m128i cells = _mm_set1_epi8(static_cast<char>(cell));
    for (int64_t i = 0; i < c; i += 16) {
      __mmask16 k = lanes(i, c), hit = hits(k, arg + i, cells);
      if constexpr (std::is_same_v<T, float>) {
        _mm512_mask_storeu_ps(dx + i, k, _mm512_maskz_loadu_ps(hit, dy + i));
      } else {
        _mm256_mask_storeu_epi16(dx + i, k, _mm256_maskz_loadu_epi16(hit, dy + i));
      }
    }
  }
  template <typename T>
  static KILN_AVX512 inline void accumulate(const T* dy, const uint8_t* arg, uint8_t cell, float* acc, int64_t c) {
    const __m128i cells = _mm_set1_epi8(static_cast<char>(cell));
    for (int64_t i = 0; i < c; i += 16) {
      __mmask16 hit = hits(lanes(i, c), arg + i, cells);
      _mm512_mask_storeu_ps(acc + i, hit, _mm512_add_ps(_mm512_maskz_loadu_ps(hit, acc + i), load(hit, dy + i)));
    }
  }
};
#endif

// ---- geometry

struct Window {
  int64_t i0, j0;              // top-left cell, padding included (may be negative)
  int64_t ilo, ihi, jlo, jhi;  // the cells inside the input
};

KILN_INLINE Window window_at(const MaxPoolGeometry& g, int64_t oh, int64_t ow) {
  Window win;
  win.i0 = oh * g.sh - g.pad_top;
  win.j0 = ow * g.sw - g.pad_left;
  win.ilo = std::max<int64_t>(win.i0, 0), win.ihi = std::min(win.i0 + g.kh, g.h);
  win.jlo = std::max<int64_t>(win.j0, 0), win.jhi = std::min(win.j0 + g.kw, g.w);
  return win;
}

bool parallel_worth_it(const MaxPoolGeometry& g, int64_t units) {
  return units > 1 && g.n * g.oh * g.ow * g.c * g.kh * g.kw >= kParallelWork;
}

// ---- whole rows (T: float, or uint16_t holding bf16 bits)

// Output row oh of image n.
template <typename T, typename Ops>
void forward_row(const MaxPoolGeometry& g, const T* x, T* y, uint8_t* argmax, int64_t n, int64_t oh) {
  for (int64_t ow = 0; ow < g.ow; ++ow) {
    const int64_t out = ((n * g.oh + oh) * g.ow + ow) * g.c;
    T* m = y + out;
    uint8_t* arg = argmax ? argmax + out : nullptr;
    Window win = window_at(g, oh, ow);
    bool first = true;
    for (int64_t i = win.ilo; i < win.ihi; ++i) {
      for (int64_t j = win.jlo; j < win.jhi; ++j) {
        const T* cell_x = x + ((n * g.h + i) * g.w + j) * g.c;
        auto cell = static_cast<uint8_t>((i - win.i0) * g.kw + (j - win.j0));
        if (first) {
          std::memcpy(m, cell_x, g.c * sizeof(T));
          if (arg) std::memset(arg, cell, g.c);
          first = false;
        } else {
          Ops::take_max(cell_x, m, arg, cell, g.c);
        }
      }
    }
    if (first) {  // a window entirely in padding (the planner never makes one): -inf, no gradient
      const T neg_inf = std::is_same_v<T, float> ? T(-std::numeric_limits<float>::infinity()) : T(0xff80);
      std::fill(m, m + g.c, neg_inf);
      if (arg) std::memset(arg, 0xff, g.c);
    }
  }
}

// Calls visit(out, cell, in) for each input cell of each window of output row oh in image n:
// out and in are the element offsets of the output position and of the input cell, and cell
// is the cell's index in its window (row-major, padding included).
template <typename Visit>
KILN_INLINE void for_each_window_cell(const MaxPoolGeometry& g, int64_t n, int64_t oh, const Visit& visit) {
  for (int64_t ow = 0; ow < g.ow; ++ow) {
    const int64_t out = ((n * g.oh + oh) * g.ow + ow) * g.c;
    Window win = window_at(g, oh, ow);
    for (int64_t i = win.ilo; i < win.ihi; ++i) {
      for (int64_t j = win.jlo; j < win.jhi; ++j) {
        visit(out, static_cast<uint8_t>((i - win.i0) * g.kw + (j - win.j0)), ((n * g.h + i) * g.w + j) * g.c);
      }
    }
  }
}

// Non-overlapping windows: output row oh's windows lie in their own band of input rows (the
// gap rows below them included), so threads write disjoint rows, and each cell once when the
// windows tile the input.
template <typename T, typename Ops>
void backward_band(const MaxPoolGeometry& g, const T* dy, const uint8_t* argmax, T* dx, int64_t n, int64_t oh,
                   bool tiles) {
  if (!tiles) {
    int64_t lo = oh == 0 ? 0 : std::clamp<int64_t>(oh * g.sh - g.pad_top, 0, g.h);
    int64_t hi = oh == g.oh - 1 ? g.h : std::clamp<int64_t>((oh + 1) * g.sh - g.pad_top, 0, g.h);
    if (hi > lo) std::fill(dx + (n * g.h + lo) * g.w * g.c, dx + (n * g.h + hi) * g.w * g.c, T(0));
  }
  for_each_window_cell(g, n, oh, [&](int64_t out, uint8_t cell, int64_t in) {
    Ops::route(dy + out, argmax + out, cell, dx + in, g.c);
  });
}

// Overlapping windows share input cells: image n's gradient adds up in acc (f32), which is
// dx itself for f32 and a scratch image for bf16.
template <typename T, typename Ops>
void backward_image(const MaxPoolGeometry& g, const T* dy, const uint8_t* argmax, float* acc, int64_t n) {
  const int64_t image = g.h * g.w * g.c;
  std::fill(acc, acc + image, 0.f);
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    for_each_window_cell(g, n, oh, [&](int64_t out, uint8_t cell, int64_t in) {
      Ops::accumulate(dy + out, argmax + out, cell, acc + (in - n * image), g.c);
    });
  }
}

template <typename T>
struct RowKernels {
  void (*forward_row)(const MaxPoolGeometry&, const T* x, T* y, uint8_t* argmax, int64_t n, int64_t oh);
  void (*backward_band)(const MaxPoolGeometry&, const T* dy, const uint8_t* argmax, T* dx, int64_t n, int64_t oh,
                        bool tiles);
  void (*backward_image)(const MaxPoolGeometry&, const T* dy, const uint8_t* argmax, float* acc, int64_t n);
};

// flatten: the row templates and the cell operations are inlined into each entry point, so
// the AVX-512 ones compile under its target attribute.
#define KILN_ROW_KERNELS(ATTR, T, OPS, NAME)                                                           \
  ATTR __attribute__((flatten)) void forward_row_##NAME(const MaxPoolGeometry& g, const T* x, T* y,     \
                                                        uint8_t* a, int64_t n, int64_t oh) {            \
    forward_row<T, OPS>(g, x, y, a, n, oh);                                                            \
  }                                                                                                    \
  ATTR __attribute__((flatten)) void backward_band_##NAME(const MaxPoolGeometry& g, const T* dy,        \
                                                          const uint8_t* a, T* dx, int64_t n,           \
                                                          int64_t oh, bool tiles) {                     \
    backward_band<T, OPS>(g, dy, a, dx, n, oh, tiles);                                                 \
  }                                                                                                    \
  ATTR __attribute__((flatten)) void backward_image_##NAME(const MaxPoolGeometry& g, const T* dy,       \
                                                           const uint8_t* a, float* acc, int64_t n) {   \
    backward_image<T, OPS>(g, dy, a, acc, n);                                                          \
  }                                                                                                    \
  constexpr RowKernels<T> kRows_##NAME{forward_row_##NAME, backward_band_##NAME, backward_image_##NAME};

KILN_ROW_KERNELS(, float, Portable, f32_portable)
KILN_ROW_KERNELS(, uint16_t, Portable, bf16_portable)
#ifdef KILN_HAVE_AVX512_POOL
KILN_ROW_KERNELS(KILN_AVX512, float, Avx512, f32_avx512)
KILN_ROW_KERNELS(KILN_AVX512, uint16_t, Avx512, bf16_avx512)
#pragma GCC diagnostic pop
#endif
#undef KILN_ROW_KERNELS

bool cpu_has_avx512bw() {
#ifdef KILN_HAVE_AVX512_POOL
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl");
  return has;
#else
  return false;
#endif
}

template <typename T>
const RowKernels<T>& row_kernels() {
#ifdef KILN_HAVE_AVX512_POOL
  if (cpu_has_avx512bw()) {
    if constexpr (std::is_same_v<T, float>) return kRows_f32_avx512;
    else return kRows_bf16_avx512;
  }
#endif
  if constexpr (std::is_same_v<T, float>) return kRows_f32_portable;
  else return kRows_bf16_portable;
}

// ---- whole tensors

template <typename T>
void forward(const MaxPoolGeometry& g, const T* x, T* y, uint8_t* argmax) {
  const RowKernels<T>& k = row_kernels<T>();
  const int64_t rows = g.n * g.oh;
#pragma omp parallel for schedule(static) if (parallel_worth_it(g, rows))
  for (int64_t r = 0; r < rows; ++r) k.forward_row(g, x, y, argmax, r / g.oh, r % g.oh);
}

template <typename T>
void backward(const MaxPoolGeometry& g, const T* dy, const uint8_t* argmax, T* dx) {
  const RowKernels<T>& k = row_kernels<T>();
  if (g.sh >= g.kh && g.sw >= g.kw) {
    const bool tiles = g.pad_top == 0 && g.pad_left == 0 && g.sh == g.kh && g.sw == g.kw && g.oh * g.kh == g.h &&
                       g.ow * g.kw == g.w;
    const int64_t rows = g.n * g.oh;
#pragma omp parallel for schedule(static) if (parallel_worth_it(g, rows))
    for (int64_t r = 0; r < rows; ++r) k.backward_band(g, dy, argmax, dx, r / g.oh, r % g.oh, tiles);
    return;
  }
  // One thread per image.
  const int64_t image = g.h * g.w * g.c;
#pragma omp parallel if (parallel_worth_it(g, g.n))
  {
    std::vector<float> scratch(std::is_same_v<T, float> ? 0 : image);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.n; ++n) {
      if constexpr (std::is_same_v<T, float>) {
        k.backward_image(g, dy, argmax, dx + n * image, n);
      } else {
        k.backward_image(g, dy, argmax, scratch.data(), n);
        for (int64_t i = 0; i < image; ++i) dx[n * image + i] = bf16::round_from_float(scratch[i]);
      }
    }
  }
}

#undef KILN_INLINE
}  // namespace

bool max_pool_kernel_supports(DType dtype, const MaxPoolGeometry& g) {
  return (dtype == DType::f32 || dtype == DType::bf16) && g.kh * g.kw <= 256;
}

void max_pool_forward(const MaxPoolGeometry& g, DType dtype, const void* x, void* y, uint8_t* argmax) {
  onednn::profiler::KernelScope timed;
  if (dtype == DType::f32) {
    forward(g, static_cast<const float*>(x), static_cast<float*>(y), argmax);
  } else {
    forward(g, static_cast<const uint16_t*>(x), static_cast<uint16_t*>(y), argmax);
  }
}

void max_pool_backward(const MaxPoolGeometry& g, DType dtype, const void* dy, const uint8_t* argmax, void* dx) {
  onednn::profiler::KernelScope timed;
  if (dtype == DType::f32) {
    backward(g, static_cast<const float*>(dy), argmax, static_cast<float*>(dx));
  } else {
    backward(g, static_cast<const uint16_t*>(dy), argmax, static_cast<uint16_t*>(dx));
  }
}

}  // namespace kiln::detail
