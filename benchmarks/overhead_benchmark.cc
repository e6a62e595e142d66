// Kiln's op overhead against the same oneDNN primitive called directly, in one binary:
// matmul 1024^3 and a 3x3 conv layer, each in f32 and bf16. Prints GFLOP/s per run and,
// at the end, Kiln time / raw time with the < 5% overhead target.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <oneapi/dnnl/dnnl.hpp>

#include "benchmarks/ratio_reporter.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/isa.h"
#include "tensor/threading.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"

namespace kiln {
namespace {

using tag = dnnl::memory::format_tag;
constexpr int64_t kM = 1024, kN = 1024, kK = 1024;
// A ResNet-50 stage-2 3x3 layer (56x56x64 -> 64) at batch 8.
constexpr int64_t kB = 8, kH = 56, kW = 56, kC = 64, kO = 64;

DType dtype_arg(const benchmark::State& s) { return s.range(0) ? DType::bf16 : DType::f32; }

void set_flops(benchmark::State& s, double flops_per_iter) {
  s.counters["GFLOP/s"] = benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  s.SetLabel(s.range(0) ? "bf16" : "f32");
}

void BM_MatmulKiln(benchmark::State& s) {
  DType dt = dtype_arg(s);
  Tensor a = cast(random_uniform({kM, kK}, -1, 1, 1), dt), b = cast(random_uniform({kK, kN}, -1, 1, 2), dt);
  for (auto _ : s) benchmark::DoNotOptimize(matmul(a, b).raw_data());
  set_flops(s, 2.0 * kM * kN * kK);
}

void BM_MatmulRaw(benchmark::State& s) {
  DType dt = dtype_arg(s);
  auto& eng = onednn::cpu_engine();
  auto dnnl_dt = onednn::to_dnnl(dt);
  dnnl::memory::desc a_md({kM, kK}, dnnl_dt, tag::ab), b_md({kK, kN}, dnnl_dt, tag::ab), c_md({kM, kN}, dnnl_dt, tag::ab);
  dnnl::matmul prim(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md), eng));
  Tensor a = cast(random_uniform({kM, kK}, -1, 1, 1), dt), b = cast(random_uniform({kK, kN}, -1, 1, 2), dt);
  Tensor c = Tensor::empty({kM, kN}, dt);
  dnnl::memory am(a_md, eng, a.raw_data()), bm(b_md, eng, b.raw_data()), cm(c_md, eng, c.raw_data());
  auto& stream = onednn::cpu_stream();
  for (auto _ : s) {
    prim.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    stream.wait();
  }
  set_flops(s, 2.0 * kM * kN * kK);
}

double conv_flops() { return 2.0 * kB * kH * kW * kO * kC * 9; }

void BM_ConvKiln(benchmark::State& s) {
  DType dt = dtype_arg(s);
  Tensor x = cast(random_uniform({kB, kH, kW, kC}, -1, 1, 3), dt);
  Tensor w = cast(random_uniform({3, 3, kC, kO}, -1, 1, 4), dt);
  Tensor bias = random_uniform({kO}, -1, 1, 5);
  Conv2dAttrs opt;
  opt.padding = Padding::same;
  for (auto _ : s) benchmark::DoNotOptimize(conv2d(x, w, bias, opt).raw_data());
  set_flops(s, conv_flops());
}

void BM_ConvRaw(benchmark::State& s) {
  DType dt = dtype_arg(s);
  auto& eng = onednn::cpu_engine();
  auto dnnl_dt = onednn::to_dnnl(dt);
  dnnl::memory::desc src_md({kB, kC, kH, kW}, dnnl_dt, tag::nhwc), dst_md({kB, kO, kH, kW}, dnnl_dt, tag::nhwc);
  dnnl::memory::desc w_any({kO, kC, 3, 3}, dnnl_dt, tag::any), w_user({kO, kC, 3, 3}, dnnl_dt, tag::hwio);
  dnnl::memory::desc b_md({kO}, dnnl::memory::data_type::f32, tag::a);
  dnnl::convolution_forward::primitive_desc pd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src_md,
                                      w_any, b_md, dst_md, {1, 1}, {0, 0}, {1, 1}, {1, 1}),
      eng);
  dnnl::convolution_forward prim(pd);
  Tensor x = cast(random_uniform({kB, kH, kW, kC}, -1, 1, 3), dt);
  Tensor w = cast(random_uniform({3, 3, kC, kO}, -1, 1, 4), dt);
  Tensor bias = random_uniform({kO}, -1, 1, 5);
  Tensor y = Tensor::empty({kB, kH, kW, kO}, dt);
  dnnl::memory w_ready;
  Tensor w_buf = onednn::buffer_for(pd.weights_desc(), dt, &w_ready);
  dnnl::memory w_user_mem(w_user, eng, w.raw_data());
  dnnl::reorder(w_user_mem, w_ready).execute(onednn::cpu_stream(), w_user_mem, w_ready);
  dnnl::memory xm(src_md, eng, x.raw_data()), ym(dst_md, eng, y.raw_data()), bm(b_md, eng, bias.raw_data());
  auto& stream = onednn::cpu_stream();
  for (auto _ : s) {
    prim.execute(stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, w_ready}, {DNNL_ARG_BIAS, bm}, {DNNL_ARG_DST, ym}});
    stream.wait();
  }
  set_flops(s, conv_flops());
}

// Kiln and raw alternate, so slow drift of the machine affects both sides alike.
BENCHMARK(BM_MatmulKiln)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MatmulRaw)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MatmulKiln)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MatmulRaw)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvKiln)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvRaw)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvKiln)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvRaw)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  kiln::cpu::apply_best_known_config(argc, argv);
  std::printf("%s\n", kiln::cpu::isa_report().c_str());
  kiln::bench::RatioReporter reporter;
  if (!kiln::bench::run_benchmarks(argc, argv, reporter)) return 1;
  std::printf("\nKiln overhead vs raw oneDNN (best of repetitions; target < 5%%)\n");
  std::printf("%-18s %12s %12s %10s  %s\n", "workload", "kiln ms", "raw ms", "overhead", "verdict");
  bool all_ok = true;
  for (const char* op : {"Matmul", "Conv"}) {
    for (int arg : {0, 1}) {
      std::string suffix = "/" + std::to_string(arg) + "/real_time";
      double kiln = reporter.best_ns(std::string("BM_") + op + "Kiln" + suffix);
      double raw = reporter.best_ns(std::string("BM_") + op + "Raw" + suffix);
      if (kiln == 0 || raw == 0) continue;
      double overhead = kiln / raw - 1.0;
      bool ok = overhead < 0.05;
      all_ok = all_ok && ok;
      std::printf("%-18s %12.3f %12.3f %9.1f%%  %s\n", (std::string(op) + (arg ? " bf16" : " f32")).c_str(),
                  kiln * 1e-6, raw * 1e-6, overhead * 100, ok ? "ok" : "OVER TARGET");
    }
  }
  return kiln::bench::verdict_status(all_ok);
}
