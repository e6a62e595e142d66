#pragma once
// What the scaling benchmark's modes share: fit's training step timed on this rank's share of
// a fixed global batch, and the results file through which rank 0 reports to the process
// that prints the report.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "benchmarks/workloads.h"
#include "dist/gradient_reducer.h"

namespace kiln::bench {

double now_s();
// --name VALUE from the command line, or fallback.
std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback);
double median(std::vector<double> v);

// The key=value results file named by KILN_SCALING_RESULTS.
std::string results_path();
void put(const std::string& key, double v);
std::map<std::string, std::vector<double>> read_results();

struct StepTimes {
  double step_s = 0, forward_s = 0, backward_s = 0, wait_s = 0, optimizer_s = 0;
  double fastest_s = 1e30;  // the fastest step: least disturbed by other processes
};

enum class Path { plain, overlapped, blocking };

// fit's training step on this rank's share of a fixed global batch: forward, backward with
// the bucketed allreduce hooked to the tape (overlapped), or started only after backward
// (blocking), or no distributed path at all (plain); then the optimizer. Averages over steps.
StepTimes time_steps(TrainWorkload& w, Path path, int warmup, int steps, dist::GradientReducer& reducer);
int64_t gradient_bytes(const TrainWorkload& w);

std::string load_average();  // 1-minute, "1.23"
std::string cpu_model();

}  // namespace kiln::bench
