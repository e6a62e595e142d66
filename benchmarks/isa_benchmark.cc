// Ops and training steps in FP32 and BF16 at each oneDNN ISA cap (AVX2, AVX-512, AVX512-BF16,
// AMX). oneDNN takes a cap once per process, so without --kiln_isa this binary runs itself
// once per cap and prints a summary; an ISA the CPU lacks is reported "unavailable on this
// CPU" with no figures.
//   bazel run //benchmarks:isa_benchmark -- [--benchmark_filter=...] [--benchmark_min_time=0.5]
//   bazel run //benchmarks:isa_benchmark -- --kiln_isa=avx512_core   (one cap, plain Google Benchmark)
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "benchmarks/machine.h"
#include "benchmarks/workloads.h"
#include "tensor/onednn/isa.h"
#include "tensor/threading.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"

namespace kiln {
namespace {

DType dt(const benchmark::State& s) { return s.range(0) ? DType::bf16 : DType::f32; }

// oneDNN 2.6 lacks some bf16 kernels below AVX-512 (matmul, for one): report, don't crash.
template <typename F>
void guarded(benchmark::State& s, F&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    s.SkipWithError(("unsupported at this ISA cap: " + std::string(e.what()).substr(0, 120)).c_str());
  }
}

void BM_Matmul(benchmark::State& s) {
  guarded(s, [&] {
    int64_t n = s.range(1);
    Tensor a = cast(random_uniform({n, n}, -1, 1, 1), dt(s)), b = cast(random_uniform({n, n}, -1, 1, 2), dt(s));
    for (auto _ : s) benchmark::DoNotOptimize(matmul(a, b).raw_data());
    s.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  });
}

// ResNet-18 (CIFAR) 3x3 convolutions at batch 32: stage 1 and stage 3.
void BM_ConvResNet(benchmark::State& s) {
  guarded(s, [&] {
    int64_t hw = s.range(1), c = s.range(2);
    Tensor x = cast(random_uniform({32, hw, hw, c}, -1, 1, 3), dt(s));
    Tensor w = cast(random_uniform({3, 3, c, c}, -1, 1, 4), dt(s));
    Conv2dAttrs o;
    o.padding = Padding::same;
    for (auto _ : s) benchmark::DoNotOptimize(conv2d(x, w, Tensor(), o).raw_data());
    s.counters["GFLOP/s"] = benchmark::Counter(2.0 * 32 * hw * hw * c * c * 9 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  });
}

void BM_BatchNormTrain(benchmark::State& s) {
  guarded(s, [&] {
    Tensor x = cast(random_uniform({32, 32, 32, 64}, -1, 1, 5), dt(s));
    Tensor g = Tensor::ones({64}), b = Tensor::zeros({64});
    for (auto _ : s) benchmark::DoNotOptimize(batch_norm_training(x, g, b).y.raw_data());
    s.SetBytesProcessed(s.iterations() * 2 * x.nbytes());
  });
}

void BM_EltwiseGelu(benchmark::State& s) {
  guarded(s, [&] {
    Tensor x = cast(random_uniform({32, 32, 32, 64}, -1, 1, 6), dt(s));
    for (auto _ : s) benchmark::DoNotOptimize(gelu(x).raw_data());
    s.SetBytesProcessed(s.iterations() * 2 * x.nbytes());
  });
}

void train_step(benchmark::State& s, const char* model, int64_t batch) {
  guarded(s, [&] {
    bench::flush_denormals();
    auto w = bench::make_train_workload(model, s.range(0) ? "bf16" : "f32", batch);
    for (int i = 0; i < 2; ++i) w.step();
    for (auto _ : s) benchmark::DoNotOptimize(w.step());
    s.counters["images/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
    // After the timed loop (so not in its time), a few more steps with the profiler on: the
    // share of a step that is neither a oneDNN primitive nor a Kiln kernel.
    bench::StepProfile p = bench::profile_steps(w, std::max<int>(3, std::min<int64_t>(s.iterations(), 50)));
    s.counters["overhead_pct"] = p.overhead_pct();
    s.counters["primitive_ms"] = p.primitive_ms;
  });
}
void BM_TrainStepMLP(benchmark::State& s) { train_step(s, "mlp", 32); }
void BM_TrainStepCNN(benchmark::State& s) { train_step(s, "cnn", 32); }
void BM_TrainStepResNet18(benchmark::State& s) { train_step(s, "resnet18", 32); }

// Arg 0: 0 = f32, 1 = bf16.
BENCHMARK(BM_Matmul)->ArgsProduct({{0, 1}, {1024}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvResNet)->ArgsProduct({{0, 1}, {32}, {64}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvResNet)->ArgsProduct({{0, 1}, {8}, {256}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_BatchNormTrain)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_EltwiseGelu)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_TrainStepMLP)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TrainStepCNN)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TrainStepResNet18)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

const char* kCaps[] = {"avx2", "avx512_core", "avx512_core_bf16", "amx"};

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs this binary once per cap with JSON output and prints a time table (ms per iteration).
int sweep(int argc, char** argv) {
  std::printf("%s\n%s\n%s\n\n", bench::machine_header(omp_get_max_threads()).c_str(), cpu::isa_report().c_str(),
              cpu::best_known_config().describe().c_str());
  std::map<std::string, std::map<std::string, std::string>> table;  // benchmark -> cap -> cell
  std::vector<std::string> order;
  for (const char* cap : kCaps) {
    if (!cpu::isa_available(cpu::isa_from_name(cap))) {
      std::printf("== %s: unavailable on this CPU (no figures reported)\n", cap);
      continue;
    }
    std::string json = "/tmp/kiln_isa_" + std::to_string(getpid()) + "_" + cap + ".json";
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return 1;
    self[len] = '\0';
    std::string cmd = std::string(self) + " --kiln_isa=" + cap + " --benchmark_out=" + json +
                      " --benchmark_out_format=json";
    for (int i = 1; i < argc; ++i) cmd += std::string(" '") + argv[i] + "'";
    std::printf("== %s\n", cap);
    std::fflush(stdout);
    cpu::unbind_current_thread();  // the child must start with every CPU, not this thread's one core
    if (std::system(cmd.c_str()) != 0) std::printf("   (run at cap %s failed)\n", cap);
    std::string out = read_all(json);
    std::remove(json.c_str());
    // Each benchmark is one flat JSON object: "name", then "error_message" or "real_time",
    // and for training steps the "overhead_pct" counter.
    std::regex object("\\{[^{}]*\"name\": \"([^\"]+)\"[^{}]*\\}");
    std::regex real_time("\"real_time\": ([0-9.e+-]+)"), overhead("\"overhead_pct\": ([0-9.e+-]+)");
    for (auto it = std::sregex_iterator(out.begin(), out.end(), object); it != std::sregex_iterator(); ++it) {
      std::string name = (*it)[1], body = (*it)[0];
      std::smatch t, o;
      if (!table.count(name)) order.push_back(name);
      char cell[64];
      if (body.find("\"error_message\"") != std::string::npos || !std::regex_search(body, t, real_time)) {
        std::snprintf(cell, sizeof cell, "unsupported");
      } else if (std::regex_search(body, o, overhead)) {
        std::snprintf(cell, sizeof cell, "%.3f (%.0f%%)", std::stod(t[1]), std::stod(o[1]));
      } else {
        std::snprintf(cell, sizeof cell, "%.3f", std::stod(t[1]));
      }
      table[name][cap] = cell;
    }
  }
  std::printf("\nTime per iteration (ms for matmul/conv/train steps, us for batchnorm/eltwise), by ISA cap;\n"
              "train steps add (framework overhead %%: the share of the step outside oneDNN primitives and Kiln kernels):\n");
  std::printf("%-40s", "benchmark (arg0: 0=f32, 1=bf16)");
  for (const char* cap : kCaps) std::printf(" %17s", cap);
  std::printf("\n");
  for (const std::string& name : order) {
    std::printf("%-40s", name.c_str());
    for (const char* cap : kCaps) {
      auto c = table[name].find(cap);
      std::printf(" %17s", c == table[name].end() ? "unavailable" : c->second.c_str());
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  kiln::cpu::apply_best_known_config(argc, argv, /*verbose=*/false);
  std::string cap;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--kiln_isa=", 0) == 0) {
      cap = a.substr(11);
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (cap.empty()) return kiln::sweep(argc, argv);
  kiln::cpu::Isa isa = kiln::cpu::isa_from_name(cap);
  if (!kiln::cpu::isa_available(isa)) {
    std::printf("%s: unavailable on this CPU\n", kiln::cpu::isa_name(isa));
    return 0;
  }
  kiln::cpu::set_max_isa(isa);
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
