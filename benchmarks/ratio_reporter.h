#pragma once
// A Google Benchmark reporter that also keeps each run's time, so a benchmark binary can
// print ratios between runs measured side by side in the same process.
#include <benchmark/benchmark.h>

#include <map>
#include <string>
#include <vector>

namespace kiln::bench {

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override;
  // Best (lowest) real time per iteration in nanoseconds over repetitions, by run name
  // without the repetition suffix; 0 when the run is missing or was skipped.
  double best_ns(const std::string& name) const;
  // Lowest value of a user counter (s.counters[counter]) over repetitions; 0 when missing.
  double lowest_counter(const std::string& name, const std::string& counter) const;

 private:
  std::map<std::string, double> best_;
  std::map<std::string, double> lowest_counter_;  // by name + "/" + counter
};

// Runs every registered benchmark with reporter; returns false on bad flags.
bool run_benchmarks(int argc, char** argv, RatioReporter& reporter);

// The start of a ratio benchmark's main: the best known thread configuration
// (kiln::cpu::apply_best_known_config), the machine header line with its thread count,
// register_benchmarks(), then run_benchmarks. Returns false on bad flags.
bool run_benchmarks_with_header(int argc, char** argv, void (*register_benchmarks)(), RatioReporter& reporter);

// KILN_BENCH_SMOKE=1 marks a CI smoke run (benchmarks/smoke_*_test.sh): a tiny
// --benchmark_min_time, so every code path and table still runs, but its timings mean nothing
// and no speed target may decide the exit status (the project forbids timed tests).
bool smoke_run();

// The exit status of a binary whose speed targets were all met (met) or not: 0 or 3; in a smoke
// run always 0, after saying the verdict was not checked.
int verdict_status(bool met);

}  // namespace kiln::bench
