// Times training steps of one workload and prints "images_per_sec=<value>" (for compare.py),
// then runs as many steps again with onednn::profiler on and prints where a step's time goes:
// wall, oneDNN primitives, Kiln's own kernels, and the framework's overhead (the rest).
// First it prints the step's FLOPs counted from the model's graph (benchmarks/flop_count.h) and
// the model's trainable parameter count (to check a twin against).
//   kiln_train_bench --model cnn --dtype bf16 --batch 32 --steps 50 --warmup 5 [--isa avx512_core] [--optimize 1]
//                    [--profile_steps N]   (default: --steps; 0 skips the profiled pass)
//                    [--conv_algorithm direct|winograd|fastest]   (kiln::set_conv_algorithm)
//                    [--ab_conv_algorithm winograd|fastest --reps N]
//   The last form trains one model in one process, switching between direct convolutions and
//   the given algorithm every --steps steps (order alternating, --reps rounds), and prints both
//   medians and their ratio.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "benchmarks/flop_count.h"
#include "benchmarks/workloads.h"
#include "graph/trace.h"
#include "nn/optimize.h"
#include "tensor/ops/conv.h"
#include "tensor/onednn/isa.h"
#include "tensor/threading.h"

namespace {
std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}
}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--print_config") {
      std::printf("%s\n", kiln::cpu::best_known_config().describe().c_str());
      return 0;
    }
  }
  kiln::cpu::apply_best_known_config(argc, argv, /*verbose=*/false);
  kiln::bench::flush_denormals();
  try {
    std::string isa = arg(argc, argv, "isa", "");
    if (!isa.empty()) {
      kiln::cpu::Isa cap = kiln::cpu::isa_from_name(isa);
      if (!kiln::cpu::isa_available(cap)) {
        std::printf("unavailable on this CPU: %s\n", kiln::cpu::isa_name(cap));
        return 0;
      }
      kiln::cpu::set_max_isa(cap);
    }
    kiln::set_conv_algorithm(kiln::conv_algorithm_from_name(arg(argc, argv, "conv_algorithm", "direct")));
    int64_t batch = std::stoll(arg(argc, argv, "batch", "32"));
    int steps = std::stoi(arg(argc, argv, "steps", "50"));
    int warmup = std::stoi(arg(argc, argv, "warmup", "5"));
    auto w = kiln::bench::make_train_workload(arg(argc, argv, "model", "mlp"), arg(argc, argv, "dtype", "f32"), batch);
    {
      // The step's arithmetic, from the model's graph (before kiln::optimize repacks kernels).
      kiln::bench::StepFlops f = kiln::bench::count_step_flops(kiln::graph::trace(*w.model, w.inputs()), batch);
      std::printf("flops_per_step=%.6g forward_flops=%.6g backward_flops=%.6g\n", f.training(), f.forward, f.backward);
      int64_t trainable = 0;
      for (const auto& v : w.model->trainable_variables()) trainable += v.value().numel();
      std::printf("trainable_params=%lld\n", static_cast<long long>(trainable));
    }
    if (arg(argc, argv, "optimize", "0") == "1") {
      std::printf("%s\n", kiln::optimize(*w.model, *w.optimizer).describe().c_str());
    }
    const std::string ab = arg(argc, argv, "ab_conv_algorithm", "");
    if (!ab.empty()) {
      const kiln::ConvAlgorithm algos[2] = {kiln::ConvAlgorithm::direct, kiln::conv_algorithm_from_name(ab)};
      for (kiln::ConvAlgorithm a : algos) {  // warm-up, and `fastest` makes its choices here
        kiln::set_conv_algorithm(a);
        for (int i = 0; i < warmup; ++i) w.step();
      }
      std::vector<double> ms[2];
      for (int rep = 0, reps = std::stoi(arg(argc, argv, "reps", "5")); rep < reps; ++rep) {
        for (int k = 0; k < 2; ++k) {
          int which = rep % 2 ? 1 - k : k;
          kiln::set_conv_algorithm(algos[which]);
          auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < steps; ++i) w.step();
          ms[which].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
                              steps);
        }
      }
      auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
      };
      double direct = median(ms[0]), other = median(ms[1]);
      std::printf("conv_algorithm_ab step_ms direct=%.3f %s=%.3f speedup=%.2fx (medians of %zu interleaved rounds)\n",
                  direct, ab.c_str(), other, direct / other, ms[0].size());
      return 0;
    }
    for (int i = 0; i < warmup; ++i) w.step();
    auto start = std::chrono::steady_clock::now();
    float loss = 0;
    for (int i = 0; i < steps; ++i) loss = w.step();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("images_per_sec=%.3f loss=%.4f\n", steps * batch / secs, loss);
    int total = warmup + steps;
    std::printf("phase_ms_per_step forward=%.3f backward=%.3f optimizer=%.3f\n", w.forward_ms / total,
                w.backward_ms / total, w.optimizer_ms / total);
    // A separate pass: the profiler adds two clock reads per primitive, which the timed pass
    // above should not carry.
    int profile_steps = std::stoi(arg(argc, argv, "profile_steps", std::to_string(steps)));
    if (profile_steps > 0) {
      kiln::bench::StepProfile p = kiln::bench::profile_steps(w, profile_steps);
      std::printf("profile wall_ms=%.4f primitive_ms=%.4f kernel_ms=%.4f overhead_pct=%.1f non_primitive_pct=%.1f "
                  "primitives_per_step=%.1f kernels_per_step=%.1f\n",
                  p.wall_ms, p.primitive_ms, p.kernel_ms, p.overhead_pct(), p.non_primitive_pct(), p.primitive_calls,
                  p.kernel_calls);
      std::printf("profile_by_kind %s\n", p.by_kind.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln_train_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
