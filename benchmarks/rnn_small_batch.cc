// The small-batch recurrent inference kernel (tensor/ops/rnn_small_batch.h) against oneDNN's
// RNN primitives as rnn_forward runs them when the kernel is not chosen (onednn_rnn_forward,
// forward_inference, rows split over the threads), all in this one process: Keras's LSTM(128),
// GRU(128) and SimpleRNN(128) over 28 steps of 28 features (the inference benchmark's
// Fashion-MNIST model) at batch 1 to 256. The kernel runs on weights prepared once (as the
// inference plan does) on one thread, split by rows, split by units and as
// small_batch_rnn_threads chooses, and eagerly (preparing the weights each call, as the ops
// do). Its results are checked against the primitive's before timing. Prints the CPU, each
// time and oneDNN time / chosen kernel time; small_batch_rnn_wins() and
// small_batch_rnn_threads() take their thresholds from this table.
#include <benchmark/benchmark.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "benchmarks/ratio_reporter.h"
#include "tensor/ops/rnn_primitive.h"
#include "tensor/ops/rnn_small_batch.h"
#include "tensor/random.h"

namespace kiln {
namespace {

using rnn_detail::RnnCell;

constexpr int64_t kSteps = 28, kFeatures = 28, kUnits = 128;
// The unit counts around 128 that small_batch_rnn_wins' bound on U rests on (LSTM, oneDNN
// against the chosen kernel only).
const std::vector<int64_t> kOtherUnits = {4, 32, 512};
const std::vector<int64_t> kOtherUnitBatches = {1, 16, 64, 256};
const std::vector<int64_t> kBatches = {1, 2, 3, 4, 8, 16, 32, 64, 128, 256};

struct Inputs {
  RnnCell cell;
  Tensor x, h0, c0;
  rnn_detail::RnnWeights w;
};

Inputs inputs_for(RnnCell cell, int64_t n, int64_t units) {
  const int g = rnn_detail::gate_count(cell);
  Inputs in{cell, random_uniform({n, kSteps, kFeatures}, -1, 1, 1), Tensor::zeros({n, units}), Tensor(),
            {random_uniform({kFeatures, g * units}, -0.2f, 0.2f, 2), random_uniform({units, g * units}, -0.2f, 0.2f, 3),
             random_uniform({rnn_detail::bias_gate_count(cell), units}, -0.2f, 0.2f, 4)}};
  if (rnn_detail::has_cell_state(cell)) in.c0 = Tensor::zeros({n, units});
  return in;
}

float max_diff(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  float d = 0;
  for (size_t k = 0; k < x.size(); ++k) d = std::max(d, std::fabs(x[k] - y[k]));
  return d;
}

// The ways a pass runs (the benchmark's third argument).
enum Way : int64_t { kOneDnn, kKernel1, kKernelRows, kKernelUnits, kKernelChosen, kEagerChosen, kWays };
const char* kWayNames[] = {"onednn", "1 thread", "rows", "units", "chosen", "eager"};

int team() { return std::max(1, omp_get_max_threads()); }

void BM_Rnn(benchmark::State& s) {
  const int64_t n = s.range(1), units = s.range(3);
  const Inputs in = inputs_for(static_cast<RnnCell>(s.range(0)), n, units);
  const Way way = static_cast<Way>(s.range(2));
  const auto prepared = rnn_detail::prepare_small_batch_rnn(in.cell, in.w);
  Tensor y = Tensor::empty({n, kSteps, units}), h = Tensor::empty({n, units}), c = Tensor::empty({n, units});
  auto kernel = [&](int threads, rnn_detail::SmallBatchSplit split) {
    rnn_detail::small_batch_rnn_run(prepared, in.x.data<float>(), n, kSteps, in.h0.data<float>(),
                                    in.c0.defined() ? in.c0.data<float>() : nullptr, y.data<float>(), h.data<float>(),
                                    c.data<float>(), threads, split);
  };
  using rnn_detail::SmallBatchSplit;
  auto run = [&] {
    switch (way) {
      case kOneDnn: y = rnn_detail::onednn_rnn_forward(in.cell, in.x, in.w, in.h0, in.c0, false).y; break;
      case kKernel1: kernel(1, SmallBatchSplit::rows); break;
      case kKernelRows: kernel(team(), SmallBatchSplit::rows); break;
      case kKernelUnits: kernel(team(), SmallBatchSplit::units); break;
      case kKernelChosen: kernel(0, SmallBatchSplit::choose); break;
      default: y = rnn_detail::small_batch_rnn_forward(in.cell, in.x, in.w, in.h0, in.c0).y; break;
    }
  };
  if (way != kOneDnn) {
    const auto want = rnn_detail::onednn_rnn_forward(in.cell, in.x, in.w, in.h0, in.c0, false);
    run();
    if (max_diff(y, want.y) > 1e-4f) {
      s.SkipWithError("the kernel's output differs from oneDNN's");
      return;
    }
  }
  for (auto _ : s) {
    run();
    benchmark::DoNotOptimize(y.raw_data());
  }
}

const char* kCellNames[] = {"lstm", "gru", "simple_rnn"};

void register_all() {
  for (int64_t cell : {0, 1, 2}) {
    for (int64_t n : kBatches) {
      for (int64_t way = 0; way < kWays; ++way) {
        benchmark::RegisterBenchmark("BM_Rnn", BM_Rnn)
            ->Args({cell, n, way, kUnits})
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
      }
    }
  }
  for (int64_t units : kOtherUnits) {
    for (int64_t n : kOtherUnitBatches) {
      for (int64_t way : {kOneDnn, kKernelChosen}) {
        benchmark::RegisterBenchmark("BM_Rnn", BM_Rnn)->Args({0, n, way, units})->Unit(benchmark::kMicrosecond)->UseRealTime();
      }
    }
  }
}

double best_ns(const bench::RatioReporter& reporter, int64_t cell, int64_t n, int64_t way, int64_t units) {
  return reporter.best_ns("BM_Rnn/" + std::to_string(cell) + "/" + std::to_string(n) + "/" + std::to_string(way) + "/" +
                          std::to_string(units) + "/real_time");
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  kiln::bench::RatioReporter reporter;
  if (!kiln::bench::run_benchmarks_with_header(argc, argv, kiln::register_all, reporter)) return 1;
  std::printf("\nrecurrent inference, %lld steps of %lld features, %lld units, %d threads: us per pass (best of "
              "repetitions) and oneDNN / kernel\n",
              static_cast<long long>(kiln::kSteps), static_cast<long long>(kiln::kFeatures),
              static_cast<long long>(kiln::kUnits), kiln::team());
  std::printf("oneDNN: rnn_forward's primitives, rows split over the threads; 1 thread, rows, units: the kernel on "
              "prepared weights; chosen: the kernel as small_batch_rnn_threads picks; eager: small_batch_rnn_forward "
              "(prepares the weights each call)\n");
  std::printf("%-10s %5s", "cell", "batch");
  for (const char* name : kiln::kWayNames) std::printf(" %10s", name);
  std::printf(" %9s %s\n", "onednn/ch", "wins");
  for (int64_t cell : {0, 1, 2}) {
    for (int64_t n : kiln::kBatches) {
      double ns[kiln::kWays];
      bool all = true;
      for (int64_t way = 0; way < kiln::kWays; ++way) {
        ns[way] = kiln::best_ns(reporter, cell, n, way, kiln::kUnits);
        all = all && ns[way] > 0;
      }
      if (!all) continue;
      std::printf("%-10s %5lld", kiln::kCellNames[cell], static_cast<long long>(n));
      for (double v : ns) std::printf(" %10.1f", v * 1e-3);
      std::printf(" %8.2fx %s\n", ns[kiln::kOneDnn] / ns[kiln::kKernelChosen],
                  kiln::rnn_detail::small_batch_rnn_wins(static_cast<kiln::rnn_detail::RnnCell>(cell), n, kiln::kUnits) ? "yes" : "no");
    }
  }
  std::printf("\nLSTM at other unit counts: us per pass, oneDNN against the chosen kernel\n%-6s %5s %10s %10s %9s %s\n",
              "units", "batch", "onednn", "chosen", "onednn/ch", "wins");
  for (int64_t units : kiln::kOtherUnits) {
    for (int64_t n : kiln::kOtherUnitBatches) {
      const double onednn = kiln::best_ns(reporter, 0, n, kiln::kOneDnn, units);
      const double chosen = kiln::best_ns(reporter, 0, n, kiln::kKernelChosen, units);
      if (onednn == 0 || chosen == 0) continue;
      std::printf("%-6lld %5lld %10.1f %10.1f %8.2fx %s\n", static_cast<long long>(units), static_cast<long long>(n),
                  onednn * 1e-3, chosen * 1e-3, onednn / chosen,
                  kiln::rnn_detail::small_batch_rnn_wins(kiln::rnn_detail::RnnCell::lstm, n, units) ? "yes" : "no");
    }
  }
  return 0;
}
