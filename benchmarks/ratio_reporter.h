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

}  // namespace kiln::bench
