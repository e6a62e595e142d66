// The small-batch recurrent inference kernel (tensor/ops/rnn_small_batch.h) on one thread and
// split over two, against oneDNN's RNN primitive (onednn_rnn_forward, forward_inference, the
// path it replaces), all in this one process, alternating: Keras's LSTM(128) / GRU(128) over
// 28 steps of 28 features (the inference benchmark's Fashion-MNIST model) at batch 1 to 64.
// The kernel's results are checked against the primitive's before timing. Prints the CPU,
// each time and oneDNN time / kernel time; small_batch_rnn_wins() and
// small_batch_rnn_threads() take their thresholds from this table.
#include <benchmark/benchmark.h>

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
const std::vector<int64_t> kBatches = {1, 2, 4, 8, 16, 32, 64};

struct Inputs {
  RnnCell cell;
  Tensor x, h0, c0;
  rnn_detail::RnnWeights w;
};

Inputs inputs_for(RnnCell cell, int64_t n) {
  const int g = rnn_detail::gate_count(cell);
  Inputs in{cell, random_uniform({n, kSteps, kFeatures}, -1, 1, 1), Tensor::zeros({n, kUnits}), Tensor(),
            {random_uniform({kFeatures, g * kUnits}, -0.2f, 0.2f, 2), random_uniform({kUnits, g * kUnits}, -0.2f, 0.2f, 3),
             random_uniform({rnn_detail::bias_gate_count(cell), kUnits}, -0.2f, 0.2f, 4)}};
  if (rnn_detail::has_cell_state(cell)) in.c0 = Tensor::zeros({n, kUnits});
  return in;
}

float max_diff(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  float d = 0;
  for (size_t k = 0; k < x.size(); ++k) d = std::max(d, std::fabs(x[k] - y[k]));
  return d;
}

// threads 0: oneDNN's primitive; else the kernel on that many threads.
void BM_Rnn(benchmark::State& s) {
  const Inputs in = inputs_for(static_cast<RnnCell>(s.range(0)), s.range(1));
  const int threads = static_cast<int>(s.range(2));
  auto run = [&] {
    return threads == 0 ? rnn_detail::onednn_rnn_forward(in.cell, in.x, in.w, in.h0, in.c0, false)
                        : rnn_detail::small_batch_rnn_forward(in.cell, in.x, in.w, in.h0, in.c0, threads);
  };
  if (threads != 0) {
    const auto want = rnn_detail::onednn_rnn_forward(in.cell, in.x, in.w, in.h0, in.c0, false);
    if (max_diff(run().y, want.y) > 1e-4f) {
      s.SkipWithError("the kernel's output differs from oneDNN's");
      return;
    }
  }
  for (auto _ : s) benchmark::DoNotOptimize(run().y.raw_data());
}

const char* kCellNames[] = {"lstm", "gru"};

void register_all() {
  for (int64_t cell : {0, 1}) {
    for (int64_t n : kBatches) {
      for (int64_t threads : {0, 1, 2}) {
        benchmark::RegisterBenchmark("BM_Rnn", BM_Rnn)->Args({cell, n, threads})->Unit(benchmark::kMicrosecond)->UseRealTime();
      }
    }
  }
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  kiln::bench::RatioReporter reporter;
  if (!kiln::bench::run_benchmarks_with_header(argc, argv, kiln::register_all, reporter)) return 1;
  std::printf("\nrecurrent inference, %lld steps of %lld features, %lld units: kernel vs oneDNN's primitive (best of repetitions)\n",
              static_cast<long long>(kiln::kSteps), static_cast<long long>(kiln::kFeatures),
              static_cast<long long>(kiln::kUnits));
  std::printf("%-6s %6s %11s %13s %13s %11s %11s\n", "cell", "batch", "onednn us", "kernel 1t us", "kernel 2t us",
              "onednn/1t", "onednn/2t");
  for (int64_t cell : {0, 1}) {
    for (int64_t n : kiln::kBatches) {
      auto ns = [&](int t) {
        return reporter.best_ns("BM_Rnn/" + std::to_string(cell) + "/" + std::to_string(n) + "/" + std::to_string(t) +
                                "/real_time");
      };
      const double onednn = ns(0), one = ns(1), two = ns(2);
      if (onednn == 0 || one == 0 || two == 0) continue;
      std::printf("%-6s %6lld %11.1f %13.1f %13.1f %10.2fx %10.2fx\n", kiln::kCellNames[cell], static_cast<long long>(n),
                  onednn * 1e-3, one * 1e-3, two * 1e-3, onednn / one, onednn / two);
    }
  }
  return 0;
}
