// Data-parallel scaling on this host (dist/, Open MPI over shared memory):
//   bazel run -c opt //benchmarks:scaling -- [--reps 3] [--steps 20] [--resnet_steps 4] [--models cnn,resnet18]
// (--two_hosts: the same step over two emulated hosts and shaped links; scaling_two_hosts.h)
// 1. Training throughput of the Keras CNN (global batch 64) and ResNet-18 (global batch 32):
//    1 process x C threads against N processes x C/N threads, each N that divides the cores;
//    each rank runs fit's step (its share of the batch, bucketed gradient allreduce hooked to
//    the tape, optimizer). Also the distributed path at N = 1 against the plain step.
// 2. allreduce latency and bandwidth, 1 KB to 64 MB, 2 ranks.
// 3. The fraction of ResNet-18's gradient allreduce hidden behind backward.
// 4. A ring-allreduce projection to 8, 16 and 64 ranks from the measured compute and bandwidth.
// Prints one report and writes it to benchmarks/results/scaling.md (under the workspace when
// run with bazel run). Reported figures are medians over --reps interleaved repetitions.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "benchmarks/scaling_steps.h"
#include "benchmarks/scaling_two_hosts.h"
#include "benchmarks/workloads.h"
#include "data/dataset.h"
#include "dist/dist.h"
#include "dist/pinning.h"
#include "dist/relaunch.h"
#include "tensor/onednn/isa.h"
#include "tensor/threading.h"

namespace {
using namespace kiln;
using namespace kiln::bench;

const std::vector<int64_t> sweep_bytes = {1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10,
                                          1 << 20, 4 << 20, 16 << 20, 64 << 20};

// In every rank: allreduce of f32 buffers of each size, mean time per call.
void allreduce_sweep() {
  for (int64_t bytes : sweep_bytes) {
    Tensor t = Tensor::ones({bytes / 4});
    int iters = bytes <= (256 << 10) ? 200 : bytes <= (4 << 20) ? 30 : 6;
    for (int i = 0; i < 3; ++i) dist::allreduce(t);
    dist::barrier();
    double t0 = now_s();
    for (int i = 0; i < iters; ++i) dist::allreduce(t);
    double secs = (now_s() - t0) / iters;
    if (dist::rank() == 0) put("allreduce_s_" + std::to_string(bytes), secs);
  }
}

std::string cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      flags = " " + line.substr(line.find(':') + 1) + " ";
      break;
    }
  }
  std::string out;
  for (const char* f : {"avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"}) {
    out += std::string(out.empty() ? "" : ", ") + f + (flags.find(std::string(" ") + f + " ") != std::string::npos ? " yes" : " no");
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (bench::is_two_hosts_rank(argc, argv)) return bench::two_hosts_rank(argc, argv);
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--two_hosts") return bench::run_two_hosts(argc, argv);
  }
  cpu::apply_best_known_config(argc, argv, /*verbose=*/false);
  const bool in_rank = dist::relaunched_job().has_value();  // ranks skip the launcher's own work
  try {
    const int reps = std::stoi(arg(argc, argv, "reps", "3"));
    const int steps = std::stoi(arg(argc, argv, "steps", "20"));
    const int resnet_steps = std::stoi(arg(argc, argv, "resnet_steps", "4"));
    const int small_bucket_mb = std::stoi(arg(argc, argv, "small_bucket_mb", "4"));
    struct Model {
      std::string name;
      int64_t batch;
      int steps;
    };
    // --models cnn leaves ResNet-18 out (CI's smoke run, benchmarks/smoke_scaling_test.sh).
    std::vector<Model> models;
    std::stringstream wanted(arg(argc, argv, "models", "cnn,resnet18"));
    for (std::string name; std::getline(wanted, name, ',');) {
      if (name == "cnn") {
        models.push_back({"cnn", 64, steps});
      } else if (name == "resnet18") {
        models.push_back({"resnet18", 32, resnet_steps});
      } else {
        throw std::invalid_argument("--models takes a comma-separated subset of cnn,resnet18, got '" + name + "'");
      }
    }
    if (models.empty()) throw std::invalid_argument("--models names no model");
    // Ranks are pinned to fewer cores: they take the launcher's count, so that they reach
    // the same launch calls.
    const int cores = in_rank ? std::atoi(std::getenv("KILN_SCALING_CORES"))
                              : static_cast<int>(dist::available_cores().size());
    setenv("KILN_SCALING_CORES", std::to_string(cores).c_str(), 1);
    std::vector<int> ns;
    for (int n = 2; n <= cores; ++n) {
      if (cores % n == 0) ns.push_back(n);
    }
    if (!in_rank) {
      char path[] = "/tmp/kiln-scaling-XXXXXX";
      int fd = mkstemp(path);
      if (fd < 0) throw std::runtime_error("cannot create a results file");
      close(fd);
      setenv("KILN_SCALING_RESULTS", path, 1);
      setenv("KILN_SCALING_LOAD_BEFORE", load_average().c_str(), 1);
      std::printf("scaling: %d cores, N in {1", cores);
      for (int n : ns) std::printf(", %d", n);
      std::printf("}, %d reps\n", reps);
    }
    for (int rep = 0; rep < reps; ++rep) {
      for (const Model& m : models) {
        if (!in_rank) {
          // 1 process x C threads: the plain step and the distributed path in a world of one.
          auto w = bench::make_train_workload(m.name, "f32", m.batch);
          dist::GradientReducer reducer;
          // Alternating single steps, so both paths see the same load from other processes.
          time_steps(w, Path::plain, 2, 0, reducer);
          StepTimes plain, one;
          for (int i = 0; i < m.steps; ++i) {
            StepTimes a = time_steps(w, Path::plain, 0, 1, reducer), b = time_steps(w, Path::overlapped, 0, 1, reducer);
            plain.step_s += a.step_s / m.steps;
            one.step_s += b.step_s / m.steps;
            plain.fastest_s = std::min(plain.fastest_s, a.step_s);
            one.fastest_s = std::min(one.fastest_s, b.step_s);
          }
          put(m.name + "_n1_plain_step_s", plain.step_s);
          put(m.name + "_n1_dist_step_s", one.step_s);
          put(m.name + "_n1_plain_fastest_s", plain.fastest_s);
          put(m.name + "_n1_dist_fastest_s", one.fastest_s);
          std::printf("rep %d %s: 1 process x %d threads %.1f ms/step (distributed path at N=1: %.1f ms)\n", rep,
                      m.name.c_str(), cores, plain.step_s * 1e3, one.step_s * 1e3);
          std::fflush(stdout);
        }
        for (int n : ns) {
          dist::launch(n, [&] {
            auto w = bench::make_train_workload(m.name, "f32", m.batch);
            dist::GradientReducer reducer;  // fit's default: 25 MB buckets
            StepTimes over = time_steps(w, Path::overlapped, 2, m.steps, reducer);
            // The same buckets all-reduced only after backward: the communication alone.
            StepTimes block = time_steps(w, Path::blocking, 1, m.steps, reducer);
            // Same step without communication: what backward costs on its own.
            StepTimes none = time_steps(w, Path::plain, 1, m.steps, reducer);
            // Smaller buckets start earlier in backward.
            dist::GradientReducer small({.bucket_bytes = int64_t(small_bucket_mb) << 20});
            StepTimes over_small = time_steps(w, Path::overlapped, 1, m.steps, small);
            StepTimes block_small = time_steps(w, Path::blocking, 1, m.steps, small);
            if (dist::rank() == 0) {
              std::string k = m.name + "_n" + std::to_string(n) + "_";
              put(k + "step_s", over.step_s);
              put(k + "backward_s", over.backward_s);
              put(k + "wait_s", over.wait_s);
              put(k + "blocking_wait_s", block.wait_s);
              put(k + "plain_step_s", none.step_s);
              put(k + "plain_backward_s", none.backward_s);
              put(k + "compute_s", none.step_s);
              put(k + "small_step_s", over_small.step_s);
              put(k + "small_wait_s", over_small.wait_s);
              put(k + "small_blocking_wait_s", block_small.wait_s);
              std::printf("rep %d %s: %d processes x %d threads %.1f ms/step (exposed allreduce %.1f ms, alone %.1f ms)\n",
                          rep, m.name.c_str(), n, cores / n, over.step_s * 1e3, over.wait_s * 1e3,
                          block.wait_s * 1e3);
              std::fflush(stdout);
            }
          });
        }
      }
    }
    dist::launch(2, allreduce_sweep, {.oversubscribe = cores < 2});
    if (in_rank) return 0;

    // ---- the report ----
    auto res = read_results();
    auto med = [&](const std::string& k) { return median(res[k]); };
    time_t t = time(nullptr);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&t));
    std::ostringstream md;
    md << "# Data-parallel scaling (dist/, Open MPI " << OMPI_MAJOR_VERSION << "." << OMPI_MINOR_VERSION << "."
       << OMPI_RELEASE_VERSION << ", shared memory)\n\n";
    md << "Measured " << date << " with `bazel run -c opt //benchmarks:scaling -- --reps " << reps << "` on "
       << cpu_model() << " (" << cores << " cores available; " << cpu_flags() << "; " << cpu::isa_report()
       << "). F32, Adam, fixed random batches; medians of " << reps
       << " interleaved repetitions. N processes run with C/N OpenMP threads each, pinned to disjoint cores. "
       << "1-minute load average " << std::getenv("KILN_SCALING_LOAD_BEFORE") << " before and " << load_average()
       << " after (other processes share these cores when it exceeds " << cores << ").\n\n";
    md << "## Training throughput (1 process x " << cores << " threads vs N processes)\n\n";
    md << "| model | global batch | layout | ms/step | img/s | vs 1 process |\n|---|---|---|---|---|---|\n";
    for (const Model& m : models) {
      double base = med(m.name + "_n1_plain_step_s");
      char row[256];
      std::snprintf(row, sizeof row, "| %s | %lld | 1 x %d threads | %.1f | %.0f | 1.00x |\n", m.name.c_str(),
                    (long long)m.batch, cores, base * 1e3, m.batch / base);
      md << row;
      for (int n : ns) {
        double s = med(m.name + "_n" + std::to_string(n) + "_step_s");
        std::snprintf(row, sizeof row, "| %s | %lld | %d x %d threads | %.1f | %.0f | %.2fx |\n", m.name.c_str(),
                      (long long)m.batch, n, cores / n, s * 1e3, m.batch / s, base / s);
        md << row;
      }
    }
    md << "\n## The distributed path at N = 1\n\n";
    md << "fit's step through the strategy's hooks (in a world of one the reducer hands the gradients back "
          "untouched) against the plain step, alternating step by step; mean and fastest step (the fastest is "
          "least disturbed by other processes on these cores).\n\n";
    md << "| model | plain ms/step | distributed path ms/step | cost | plain fastest ms | distributed fastest ms | "
          "cost (fastest) |\n|---|---|---|---|---|---|---|\n";
    for (const Model& m : models) {
      double a = med(m.name + "_n1_plain_step_s"), b = med(m.name + "_n1_dist_step_s");
      double fa = med(m.name + "_n1_plain_fastest_s"), fb = med(m.name + "_n1_dist_fastest_s");
      char row[300];
      std::snprintf(row, sizeof row, "| %s | %.2f | %.2f | %+.1f%% | %.2f | %.2f | %+.1f%% |\n", m.name.c_str(),
                    a * 1e3, b * 1e3, 100 * (b / a - 1), fa * 1e3, fb * 1e3, 100 * (fb / fa - 1));
      md << row;
    }
    md << "\n## allreduce over shared memory (2 ranks, f32, in place)\n\n";
    md << "| size | time (us) | algorithm bandwidth (GB/s) | bus bandwidth (GB/s) |\n|---|---|---|---|\n";
    for (int64_t bytes : sweep_bytes) {
      double s = med("allreduce_s_" + std::to_string(bytes));
      char row[200];
      std::string size = bytes >= (1 << 20) ? std::to_string(bytes >> 20) + " MB" : std::to_string(bytes >> 10) + " KB";
      std::snprintf(row, sizeof row, "| %s | %.1f | %.2f | %.2f |\n", size.c_str(), s * 1e6, bytes / s / 1e9,
                    bytes / s / 1e9 * 2 * (2 - 1) / 2);
      md << row;
    }
    // Ring model fitted to the 2-rank sweep: t(m) = 2(N-1) alpha + 2(N-1)/N m / beta.
    double t_small = med("allreduce_s_1024"), t_big = med("allreduce_s_67108864");
    double alpha = t_small / 2, beta = (64.0 * (1 << 20) - 1024) / std::max(t_big - t_small, 1e-9);
    md << "\n## Overlap: allreduce hidden behind backward\n\n";
    md << "Each rank's wait for the allreduce after backward, with buckets started as backward produces "
          "their last gradient (overlapped), against the same buckets started only after backward (alone); "
          "hidden = 1 - overlapped / alone.\n\n";
    md << "| model | gradients (MB) | buckets | allreduce alone, after backward (ms) | exposed when overlapped (ms) | "
          "hidden | ms/step overlapped |\n|---|---|---|---|---|---|---|\n";
    std::map<std::string, double> hidden;
    for (const Model& m : models) {
      if (ns.empty()) break;
      std::string k = m.name + "_n2_";
      double alone = med(k + "blocking_wait_s"), exposed = med(k + "wait_s");
      hidden[m.name] = alone > 0 ? std::clamp(1 - exposed / alone, 0.0, 1.0) : 0;
      auto w = bench::make_train_workload(m.name, "f32", 1);
      char row[300];
      std::snprintf(row, sizeof row, "| %s | %.1f | 25 MB | %.2f | %.2f | %.0f%% | %.1f |\n", m.name.c_str(),
                    gradient_bytes(w) / 1048576.0, alone * 1e3, exposed * 1e3, 100 * hidden[m.name],
                    med(k + "step_s") * 1e3);
      md << row;
      double alone_s = med(k + "small_blocking_wait_s"), exposed_s = med(k + "small_wait_s");
      std::snprintf(row, sizeof row, "| %s | %.1f | %d MB | %.2f | %.2f | %.0f%% | %.1f |\n", m.name.c_str(),
                    gradient_bytes(w) / 1048576.0, small_bucket_mb, alone_s * 1e3, exposed_s * 1e3,
                    alone_s > 0 ? 100 * std::clamp(1 - exposed_s / alone_s, 0.0, 1.0) : 0.0,
                    med(k + "small_step_s") * 1e3);
      md << row;
    }
    md << "\n## Projection to more ranks (ring allreduce model)\n\n";
    char fit_line[400];
    std::snprintf(fit_line, sizeof fit_line,
                  "Fitted to the sweep above: per-message latency alpha = %.1f us, bandwidth beta = %.2f GB/s (this "
                  "host's shared memory; across hosts use the network's). Each rank keeps the per-rank batch measured "
                  "at N = 2 with one core, so the global batch grows with N (weak scaling); step = compute + (1 - "
                  "hidden) x ring allreduce, allreduce = 2(N-1) alpha + 2(N-1)/N x gradient bytes / beta.\n\n",
                  alpha * 1e6, beta / 1e9);
    md << fit_line;
    md << "| model | ranks | global batch | compute ms | allreduce ms | exposed ms | img/s | efficiency |\n"
          "|---|---|---|---|---|---|---|---|\n";
    for (const Model& m : models) {
      if (ns.empty()) break;
      auto w = bench::make_train_workload(m.name, "f32", 1);
      double bytes = gradient_bytes(w);
      double compute = med(m.name + "_n2_compute_s");
      int64_t per_rank = m.batch / 2;
      for (int n : {8, 16, 64}) {
        double comm = 2 * (n - 1) * alpha + 2.0 * (n - 1) / n * bytes / beta;
        double exposed = (1 - hidden[m.name]) * comm;
        double step = compute + exposed;
        char row[240];
        std::snprintf(row, sizeof row, "| %s | %d | %lld | %.1f | %.1f | %.1f | %.0f | %.0f%% |\n", m.name.c_str(), n,
                      (long long)(per_rank * n), compute * 1e3, comm * 1e3, exposed * 1e3, per_rank * n / step,
                      100 * compute / step);
        md << row;
      }
    }
    std::printf("\n%s", md.str().c_str());
    const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY");
    std::string out = std::string(ws ? ws : ".") + "/benchmarks/results/scaling.md";
    std::ofstream(out) << md.str();
    std::printf("\nwritten to %s\n", out.c_str());
    std::remove(results_path().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "scaling: %s\n", e.what());
    return 1;
  }
  return 0;
}
