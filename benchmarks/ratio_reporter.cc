#include "benchmarks/ratio_reporter.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "benchmarks/machine.h"
#include "tensor/threading.h"

namespace kiln::bench {

void RatioReporter::ReportRuns(const std::vector<Run>& runs) {
  ConsoleReporter::ReportRuns(runs);
  for (const Run& r : runs) {
    if (r.run_type != Run::RT_Iteration || r.error_occurred || r.iterations == 0) continue;
    double ns = r.GetAdjustedRealTime();
    switch (r.time_unit) {
      case benchmark::kSecond: ns *= 1e9; break;
      case benchmark::kMillisecond: ns *= 1e6; break;
      case benchmark::kMicrosecond: ns *= 1e3; break;
      case benchmark::kNanosecond: break;
    }
    std::string name = r.run_name.str();
    auto it = best_.find(name);
    best_[name] = it == best_.end() ? ns : std::min(it->second, ns);
    for (const auto& [counter, value] : r.counters) {
      const std::string key = name + "/" + counter;
      auto c = lowest_counter_.find(key);
      lowest_counter_[key] = c == lowest_counter_.end() ? value.value : std::min(c->second, value.value);
    }
  }
}

double RatioReporter::lowest_counter(const std::string& name, const std::string& counter) const {
  auto it = lowest_counter_.find(name + "/" + counter);
  return it == lowest_counter_.end() ? 0.0 : it->second;
}

double RatioReporter::best_ns(const std::string& name) const {
  auto it = best_.find(name);
  return it == best_.end() ? 0.0 : it->second;
}

bool run_benchmarks(int argc, char** argv, RatioReporter& reporter) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return false;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return true;
}

bool run_benchmarks_with_header(int argc, char** argv, void (*register_benchmarks)(), RatioReporter& reporter) {
  const cpu::ThreadConfig threads = cpu::apply_best_known_config(argc, argv);
  std::printf("%s\n", machine_header(threads.omp_num_threads).c_str());
  register_benchmarks();
  return run_benchmarks(argc, argv, reporter);
}

bool smoke_run() {
  const char* smoke = std::getenv("KILN_BENCH_SMOKE");
  return smoke != nullptr && std::strcmp(smoke, "1") == 0;
}

int verdict_status(bool met) {
  if (smoke_run()) {
    std::printf("KILN_BENCH_SMOKE=1: a smoke run; the targets above were not checked\n");
    return 0;
  }
  return met ? 0 : 3;
}

}  // namespace kiln::bench
