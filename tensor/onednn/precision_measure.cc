// measure_precision(): raw oneDNN primitives, not Kiln ops, so that the probe times only the
// kernels the choice is about (no autograd, no Kiln caches, no casts) and leaves Kiln's
// primitive cache and implementation log as they were.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "tensor/onednn/precision_probe.h"

namespace kiln::cpu {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using dims = dnnl::memory::dims;

constexpr int kWarmups = 1;
constexpr int kRuns = 4;  // best of: the least disturbed run is the closest to what the kernel can do

// The probe runs on one OpenMP thread. The ratio it wants belongs to the core (its bf16 and f32
// units), and one thread times it steadily on a busy machine, where two threads' barriers wait
// on whichever one the scheduler has parked: under a load of 7 on 2 cores, five one-thread
// probes gave 0.60x-0.63x and five two-thread probes 0.61x-1.30x.
class OneThread {
 public:
  OneThread() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved_); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int saved_;
};

// 64-byte aligned buffers, as Kiln's allocator gives, filled with 0.5 in either dtype: finite, no
// denormals, whatever the blocked layout.
class Arena {
 public:
  explicit Arena(dnnl::engine& engine) : engine_(engine) {}
  dnnl::memory make(const dnnl::memory::desc& md) {
    size_t bytes = (md.get_size() + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    buffers_.emplace_back(p, std::free);
    if (md.data_type() == dt::bf16) {
      std::fill_n(static_cast<uint16_t*>(p), bytes / 2, uint16_t{0x3f00});
    } else {
      std::fill_n(static_cast<float*>(p), bytes / 4, 0.5f);
    }
    return dnnl::memory(md, engine_, p);
  }

 private:
  dnnl::engine& engine_;
  std::vector<std::unique_ptr<void, decltype(&std::free)>> buffers_;
};

struct Pass {
  dnnl::primitive prim;
  std::unordered_map<int, dnnl::memory> args;
};

// A Dense layer's step: Y = X W, dX = dY W^T, dW = X^T dY, the transposes as strides the way
// Kiln's matmul backward passes them.
void matmul_passes(dnnl::engine& eng, Arena& arena, dt t, std::vector<Pass>& out) {
  const int64_t m = 128, k = 384, n = 384;
  auto plain = [&](int64_t r, int64_t c) { return dnnl::memory::desc({r, c}, t, tag::ab); };
  auto transposed = [&](int64_t r, int64_t c) { return dnnl::memory::desc({r, c}, t, tag::ba); };
  auto add = [&](const dnnl::memory::desc& a, const dnnl::memory::desc& b, const dnnl::memory::desc& c) {
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), eng);
    out.push_back({dnnl::matmul(pd), {{DNNL_ARG_SRC, arena.make(a)}, {DNNL_ARG_WEIGHTS, arena.make(b)},
                                      {DNNL_ARG_DST, arena.make(c)}}});
  };
  add(plain(m, k), plain(k, n), plain(m, n));       // forward
  add(plain(m, n), transposed(n, k), plain(m, k));  // backward data
  add(transposed(k, m), plain(m, n), plain(k, n));  // backward weights
}

// A 3x3 'same' convolution's step in NHWC, weights in oneDNN's preferred layout (Kiln reorders
// them once and caches them). Under mixed precision the kernel gradient is f32, as in Kiln.
void conv_passes(dnnl::engine& eng, Arena& arena, dt t, std::vector<Pass>& out) {
  const int64_t n = 2, h = 16, w = 16, c = 64, o = 64;
  dnnl::memory::desc src({n, c, h, w}, t, tag::nhwc), dst({n, o, h, w}, t, tag::nhwc);
  dnnl::memory::desc any_w({o, c, 3, 3}, t, tag::any), any_dw({o, c, 3, 3}, dt::f32, tag::any);
  dims strides{1, 1}, pad{1, 1};
  auto algo = dnnl::algorithm::convolution_direct;
  dnnl::convolution_forward::primitive_desc fwd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, src, any_w, dst, strides, pad, pad),
      eng);
  out.push_back({dnnl::convolution_forward(fwd), {{DNNL_ARG_SRC, arena.make(src)},
                                                  {DNNL_ARG_WEIGHTS, arena.make(fwd.weights_desc())},
                                                  {DNNL_ARG_DST, arena.make(dst)}}});
  dnnl::convolution_backward_data::primitive_desc bwd_d(
      dnnl::convolution_backward_data::desc(algo, src, any_w, dst, strides, pad, pad), eng, fwd);
  out.push_back({dnnl::convolution_backward_data(bwd_d), {{DNNL_ARG_DIFF_DST, arena.make(dst)},
                                                          {DNNL_ARG_WEIGHTS, arena.make(bwd_d.weights_desc())},
                                                          {DNNL_ARG_DIFF_SRC, arena.make(src)}}});
  dnnl::convolution_backward_weights::primitive_desc bwd_w(
      dnnl::convolution_backward_weights::desc(algo, src, any_dw, dst, strides, pad, pad), eng, fwd);
  out.push_back({dnnl::convolution_backward_weights(bwd_w), {{DNNL_ARG_SRC, arena.make(src)},
                                                             {DNNL_ARG_DIFF_DST, arena.make(dst)},
                                                             {DNNL_ARG_DIFF_WEIGHTS, arena.make(bwd_w.diff_weights_desc())}}});
}

// Runs the f32 and bf16 versions of each pass alternately, so that a burst of load from other
// processes hits both dtypes alike; returns the summed best times (f32, bf16).
std::pair<double, double> time_alternately(dnnl::stream& s, const std::vector<Pass>& f32, const std::vector<Pass>& bf16) {
  auto once = [&](const Pass& p) {
    auto start = std::chrono::steady_clock::now();
    p.prim.execute(s, p.args);
    s.wait();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double sum_f32 = 0, sum_bf16 = 0;
  for (size_t i = 0; i < f32.size(); ++i) {
    for (int w = 0; w < kWarmups; ++w) once(f32[i]), once(bf16[i]);
    double best_f32 = 1e30, best_bf16 = 1e30;
    for (int r = 0; r < kRuns; ++r) {
      best_f32 = std::min(best_f32, once(f32[i]));
      best_bf16 = std::min(best_bf16, once(bf16[i]));
    }
    sum_f32 += best_f32;
    sum_bf16 += best_bf16;
  }
  return {sum_f32, sum_bf16};
}

}  // namespace

ProbeTimings measure_precision() {
  OneThread one_thread;
  try {
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    dnnl::stream s(eng);
    Arena arena(eng);
    std::vector<Pass> mm_f32, mm_bf16, conv_f32, conv_bf16;
    matmul_passes(eng, arena, dt::f32, mm_f32);
    matmul_passes(eng, arena, dt::bf16, mm_bf16);
    conv_passes(eng, arena, dt::f32, conv_f32);
    conv_passes(eng, arena, dt::bf16, conv_bf16);
    ProbeTimings t;
    std::tie(t.matmul_f32, t.matmul_bf16) = time_alternately(s, mm_f32, mm_bf16);
    std::tie(t.conv_f32, t.conv_bf16) = time_alternately(s, conv_f32, conv_bf16);
    return t;
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("precision probe: oneDNN could not run a bf16/f32 kernel: ") + e.what());
  }
}

}  // namespace kiln::cpu
