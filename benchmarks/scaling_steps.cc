#include "benchmarks/scaling_steps.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <stdexcept>

#include "data/dataset.h"
#include "dist/dist.h"

namespace kiln::bench {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

std::string results_path() { return std::string(std::getenv("KILN_SCALING_RESULTS")); }
void put(const std::string& key, double v) {
  std::ofstream(results_path(), std::ios::app) << key << "=" << v << "\n";
}
std::map<std::string, std::vector<double>> read_results() {
  std::map<std::string, std::vector<double>> out;
  std::ifstream in(results_path());
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)].push_back(std::stod(line.substr(eq + 1)));
  }
  return out;
}

// fit's training step on this rank's share of a fixed global batch: forward, backward with
// the bucketed allreduce hooked to the tape (overlapped), or started only after backward
// (blocking), or no distributed path at all (plain); then the optimizer. Averages over steps.
StepTimes time_steps(TrainWorkload& w, Path path, int warmup, int steps, dist::GradientReducer& reducer) {
  const int r = dist::rank(), n = dist::world_size();
  const int64_t b = w.x.shape()[0];
  const int64_t begin = r * b / n, end = (r + 1) * b / n;
  std::vector<int64_t> rows(end - begin);
  std::iota(rows.begin(), rows.end(), begin);
  Tensor x = data::gather_rows(w.x, rows), y = data::gather_rows(w.y, rows);
  std::vector<Variable> vars = w.model->trainable_variables();
  StepTimes t;
  for (int i = 0; i < warmup + steps; ++i) {
    if (i == warmup) {
      dist::barrier();
      t = StepTimes();
    }
    double t0 = now_s();
    std::vector<Tensor> grads;
    double t1, t2;
    {
      GradientTape tape;
      Tensor loss = w.loss(y, (*w.model)(x, true));
      t1 = now_s();
      if (path != Path::plain) reducer.begin(vars, double(end - begin), path == Path::overlapped ? &tape : nullptr);
      grads = tape.gradient(loss, vars);
      t2 = now_s();
    }
    if (path != Path::plain) grads = reducer.finish(grads);
    double t3 = now_s();
    w.optimizer->apply_gradients(grads, vars);
    double t4 = now_s();
    t.forward_s += t1 - t0;
    t.backward_s += t2 - t1;
    t.wait_s += t3 - t2;
    t.optimizer_s += t4 - t3;
    t.step_s += t4 - t0;
    if (i >= warmup) t.fastest_s = std::min(t.fastest_s, t4 - t0);
  }
  for (double* v : {&t.step_s, &t.forward_s, &t.backward_s, &t.wait_s, &t.optimizer_s}) *v /= std::max(steps, 1);
  return t;
}

int64_t gradient_bytes(const TrainWorkload& w) {
  int64_t n = 0;
  for (const Variable& v : w.model->trainable_variables()) n += v.value().numel();
  return 4 * n;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  double a = 0;
  in >> a;
  char s[32];
  std::snprintf(s, sizeof s, "%.2f", a);
  return s;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

}  // namespace kiln::bench
