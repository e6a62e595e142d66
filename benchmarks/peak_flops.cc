// The machine's peak FLOP/s per dtype and ISA, measured, for the percent-of-peak columns of
// //benchmarks:compare. With OMP_NUM_THREADS threads (one team, as the workloads run):
//   fma_f32_avx512   a register-only loop of independent vfmadd231ps zmm chains (2 FLOPs x 16 lanes);
//   fma_f32_avx2     the same with ymm registers (machines without AVX-512);
//   dpbf16_avx512    vdpbf16ps zmm chains (2 FLOPs x 2 pairs x 16 lanes), the AVX512-BF16 dot product;
//   onednn_f32 / onednn_bf16   raw oneDNN matmul (bf16 x bf16 -> f32 for bf16) on M = N = K = --size,
//                    what the library attains on a large, cache-blocked GEMM.
// Prints one "peak <name> gflops=<value>" line each ("unavailable" when the CPU lacks the ISA).
//   peak_flops [--seconds 0.5] [--size 2048]
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <dnnl.hpp>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}

// The loops over chains are unrolled fully so that the accumulators live in registers.
// Enough independent accumulator chains to cover the FMA latency (4-5 cycles) on two pipes.
constexpr int kChains = 12;
constexpr int64_t kInner = 1 << 16;

// One function per instruction: `step` is applied to every chain each iteration.
#define KILN_PEAK_LOOP(vec, set1, step, ...)                       \
  vec acc[kChains];                                                \
  _Pragma("GCC unroll 16") for (int c = 0; c < kChains; ++c) {     \
    acc[c] = set1(0.001f * c);                                     \
  }                                                                \
  for (int64_t r = 0; r < rounds * kInner; ++r) {                  \
    _Pragma("GCC unroll 16") for (int c = 0; c < kChains; ++c) {   \
      acc[c] = step(acc[c], __VA_ARGS__);                          \
    }                                                              \
  }                                                                \
  _Pragma("GCC unroll 16") for (int c = 1; c < kChains; ++c) {     \
    acc[0] = acc[0] + acc[c];                                      \
  }

__attribute__((target("avx512f"))) float fma_avx512(int64_t rounds) {
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  KILN_PEAK_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, a, b)
  return _mm512_reduce_add_ps(acc[0]);
}

__attribute__((target("avx2,fma"))) float fma_avx2(int64_t rounds) {
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  KILN_PEAK_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, a, b)
  return acc[0][0] + acc[0][7];
}

__attribute__((target("avx512f,avx512bf16"))) float dpbf16_avx512(int64_t rounds) {
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(1e-4f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(1e-4f));
  KILN_PEAK_LOOP(__m512, _mm512_set1_ps, _mm512_dpbf16_ps, a, b)
  return _mm512_reduce_add_ps(acc[0]);
}
#undef KILN_PEAK_LOOP

volatile float g_sink;

// GFLOP/s of `loop` run by every thread of one OpenMP team for about `seconds`; flops_per_round
// counts one round of one thread. The best of three timed passes (the peak is a maximum).
double loop_gflops(float (*loop)(int64_t), double flops_per_round, double seconds) {
  int64_t rounds = 1;
  for (;;) {  // grow the work until one pass takes a tenth of the time asked
    auto t0 = Clock::now();
    g_sink = loop(rounds);
    if (std::chrono::duration<double>(Clock::now() - t0).count() > seconds / 10 || rounds > (1 << 20)) break;
    rounds *= 2;
  }
  rounds *= 10;
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    int threads = 1;
    auto t0 = Clock::now();
#pragma omp parallel
    {
#pragma omp single
      threads = omp_get_num_threads();
      float v = loop(rounds);
#pragma omp atomic
      g_sink += v;
    }
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, threads * rounds * flops_per_round / s / 1e9);
  }
  return best;
}

double onednn_matmul_gflops(dnnl::memory::data_type dt, int64_t n, double seconds) {
  using namespace dnnl;
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  memory::desc a({n, n}, dt, memory::format_tag::ab), b({n, n}, dt, memory::format_tag::ab),
      c({n, n}, memory::data_type::f32, memory::format_tag::ab);
  matmul prim(matmul::primitive_desc(matmul::desc(a, b, c), eng));
  memory ma(a, eng), mb(b, eng), mc(c, eng);
  std::memset(ma.get_data_handle(), 0, a.get_size());
  std::memset(mb.get_data_handle(), 0, b.get_size());
  auto call = [&] {
    prim.execute(s, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
    s.wait();
  };
  call();  // first call: JIT and page faults
  double best = 0;
  auto start = Clock::now();
  do {
    auto t0 = Clock::now();
    call();
    best = std::max(best, 2.0 * n * n * n / std::chrono::duration<double>(Clock::now() - t0).count() / 1e9);
  } while (std::chrono::duration<double>(Clock::now() - start).count() < seconds);
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const double seconds = std::stod(arg(argc, argv, "seconds", "0.5"));
    const int64_t size = std::stoll(arg(argc, argv, "size", "2048"));
    __builtin_cpu_init();
    const bool avx512 = __builtin_cpu_supports("avx512f");
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const bool bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
    std::printf("threads=%d\n", omp_get_max_threads());
    auto report = [](const char* name, bool available, auto measure) {
      if (!available) {
        std::printf("peak %s unavailable\n", name);
      } else {
        std::printf("peak %s gflops=%.1f\n", name, measure());
      }
      std::fflush(stdout);
    };
    const double per_round = kChains * static_cast<double>(kInner);
    report("fma_f32_avx512", avx512, [&] { return loop_gflops(fma_avx512, per_round * 16 * 2, seconds); });
    report("fma_f32_avx2", avx2, [&] { return loop_gflops(fma_avx2, per_round * 8 * 2, seconds); });
    report("dpbf16_avx512", bf16, [&] { return loop_gflops(dpbf16_avx512, per_round * 32 * 2, seconds); });
    report("onednn_f32", true, [&] { return onednn_matmul_gflops(dnnl::memory::data_type::f32, size, seconds); });
    report("onednn_bf16", bf16, [&] { return onednn_matmul_gflops(dnnl::memory::data_type::bf16, size, seconds); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "peak_flops: %s\n", e.what());
    return 1;
  }
  return 0;
}
