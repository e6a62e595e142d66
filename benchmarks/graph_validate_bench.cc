// What Graph::validate (every node's shape and dtype inference) costs next to what it guards:
// ResNet50 traced once, then, in this one process, validate() and optimize_for_inference()
// (its six passes, each of which now ends with a validate) timed alternately; prints both
// medians, the ratio, and the machine. Spatial size does not change the work of either (both
// walk nodes and shapes), so the input is 64x64 to keep the trace short.
//   flock -o -x /work/.timing.lock bazel run -c opt //benchmarks:graph_validate_bench [-- --rounds 15]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <vector>

#include "benchmarks/args.h"
#include "benchmarks/machine.h"
#include "graph/passes/optimize_for_inference.h"
#include "graph/trace.h"
#include "nn/applications/applications.h"
#include "tensor/random.h"
#include <omp.h>

namespace {

double seconds_of(const std::function<void()>& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kiln;
  // --rounds shrinks the run for CI's smoke test (benchmarks/smoke_*_test.sh).
  int64_t rounds = 0;
  try {
    rounds = bench::arg_int(argc, argv, "rounds", 15, 1);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "graph_validate_bench: %s\n", e.what());
    return 1;
  }
  auto model = nn::applications::resnet50({64, 64, 3}, 1000);
  graph::Graph g = graph::trace(*model, random_uniform({1, 64, 64, 3}, -1.f, 1.f, 1));
  std::printf("%s\n", bench::machine_header(omp_get_max_threads()).c_str());
  std::printf("ResNet50 graph: %zu nodes, %zu values\n", g.nodes.size(), g.values.size());
  std::vector<double> validate_s, optimize_s;
  for (int round = 0; round < rounds; ++round) {
    validate_s.push_back(seconds_of([&] { g.validate(); }));
    optimize_s.push_back(seconds_of([&] { graph::passes::optimize_for_inference(g); }));
  }
  double v = median(validate_s), o = median(optimize_s);
  std::printf("validate: %.3f ms (median of %zu); optimize_for_inference (6 validates inside): %.3f ms\n", v * 1e3,
              validate_s.size(), o * 1e3);
  std::printf("ratio validate / optimize_for_inference: %.3f\n", v / o);
  return 0;
}
