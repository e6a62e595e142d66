// The RNN primitive's row split (tensor/ops/rnn_primitive.h, row_chunks) against the unsplit
// pass it replaces, alternating in this one process: Kiln's LSTM(128) benchmark layer on 28x28
// rows (Fashion-MNIST as a sequence), f32 and, where the CPU has it, bf16, at batch 2 to 256;
// a training pass (forward with workspace + backward) and an inference forward. Prints the CPU,
// each time and unsplit time / split time, and the chunks row_chunks picks (its rule was read off
// this table). Training passes run both ways LSTM training can (lstm_composed_pass.h): the
// composed LSTM (what Kiln runs) and oneDNN's LSTM primitives, and a second table compares
// them split.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "benchmarks/ratio_reporter.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/lstm_composed_pass.h"
#include "tensor/ops/rnn_primitive.h"
#include "tensor/random.h"

namespace kiln {
namespace {

using rnn_detail::RnnCell;

constexpr int64_t kSteps = 28, kFeatures = 28, kUnits = 128;
const std::vector<int64_t> kBatches = {2, 4, 8, 16, 32, 64, 128, 256};

struct Case {
  Tensor x, h0, c0, dy, dh, dc;
  rnn_detail::RnnWeights w;
};

Case make_case(int64_t batch, DType dtype) {
  auto in = [&](const Shape& s, uint64_t seed) {
    Tensor t = random_uniform(s, -0.5f, 0.5f, seed);
    return dtype == DType::f32 ? t : cast(t, dtype);
  };
  Case c;
  c.x = in({batch, kSteps, kFeatures}, 1);
  c.h0 = in({batch, kUnits}, 2);
  c.c0 = random_uniform({batch, kUnits}, -0.5f, 0.5f, 3);
  c.w = {in({kFeatures, 4 * kUnits}, 4), in({kUnits, 4 * kUnits}, 5), random_uniform({4, kUnits}, -0.1f, 0.1f, 6)};
  c.dy = random_uniform({batch, kSteps, kUnits}, -1, 1, 7);
  c.dh = random_uniform({batch, kUnits}, -1, 1, 8);
  c.dc = random_uniform({batch, kUnits}, -1, 1, 9);
  return c;
}

// range(0): batch; range(1): 0 f32, 1 bf16; range(2): 0 inference forward, 1 training pass;
// range(3): forced chunks (1: unsplit) or 0 for the rule; range(4): 0 the composed LSTM for
// training (Kiln's rule), 1 the primitives.
void BM_Lstm(benchmark::State& s) {
  const DType dtype = s.range(1) ? DType::bf16 : DType::f32;
  if (dtype == DType::bf16 && !rnn_detail::native_bf16_rnn()) {
    s.SkipWithError("no native bf16 RNN on this CPU");
    return;
  }
  const bool training = s.range(2) != 0;
  Case c = make_case(s.range(0), dtype);
  rnn_detail::ForceRowChunks chunks(static_cast<int>(s.range(3)));
  rnn_detail::ForceLstmTrainingPath path(s.range(4) ? rnn_detail::LstmTrainingPath::primitive
                                                    : rnn_detail::LstmTrainingPath::automatic);
  for (auto _ : s) {
    auto pass = rnn_detail::rnn_forward(RnnCell::lstm, c.x, c.w, c.h0, c.c0, training);
    if (training) {
      rnn_detail::RnnWeights dw{Tensor::zeros(c.w.layer.shape()), Tensor::zeros(c.w.iter.shape()),
                                Tensor::zeros(c.w.bias.shape())};
      auto grads = rnn_detail::rnn_backward(RnnCell::lstm, c.x, c.w, c.h0, c.c0, pass, c.dy, c.dh, c.dc, &dw);
      benchmark::DoNotOptimize(grads.dx.raw_data());
    }
    benchmark::DoNotOptimize(pass.h.raw_data());
  }
  s.counters["chunks"] = rnn_detail::row_chunks(s.range(0));
}

std::string name_of(int64_t batch, int dtype, int training, int chunks, int primitive = 0) {
  return "BM_Lstm/" + std::to_string(batch) + "/" + std::to_string(dtype) + "/" + std::to_string(training) + "/" +
         std::to_string(chunks) + "/" + std::to_string(primitive) + "/real_time";
}

void register_all() {
  for (int64_t training : {1, 0})
    for (int64_t dtype : {0, 1})
      for (int64_t batch : kBatches)
        for (int64_t chunks : {1, 2})
          for (int64_t primitive : {0, 1}) {
            if (primitive && !training) continue;
            benchmark::RegisterBenchmark("BM_Lstm", BM_Lstm)
                ->Args({batch, dtype, training, chunks, primitive})
                ->Unit(benchmark::kMicrosecond)
                ->UseRealTime();
          }
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  kiln::bench::RatioReporter reporter;
  if (!kiln::bench::run_benchmarks_with_header(argc, argv, kiln::register_all, reporter)) return 1;
  std::printf("\nLSTM(%lld) over [batch, %lld, %lld]: unsplit vs split in 2 row chunks (best of repetitions)\n",
              static_cast<long long>(kiln::kUnits), static_cast<long long>(kiln::kSteps),
              static_cast<long long>(kiln::kFeatures));
  std::printf("%-9s %-5s %6s %12s %12s %15s %12s\n", "pass", "dtype", "batch", "unsplit us", "split us",
              "unsplit/split", "rule chunks");
  for (int training : {1, 0}) {
    for (int dtype : {0, 1}) {
      for (int64_t batch : kiln::kBatches) {
        const double whole = reporter.best_ns(kiln::name_of(batch, dtype, training, 1));
        const double split = reporter.best_ns(kiln::name_of(batch, dtype, training, 2));
        if (whole == 0 || split == 0) continue;
        std::printf("%-9s %-5s %6lld %12.1f %12.1f %14.2fx %12d\n", training ? "training" : "inference",
                    dtype ? "bf16" : "f32", static_cast<long long>(batch), whole * 1e-3, split * 1e-3, whole / split,
                    kiln::rnn_detail::row_chunks(batch));
      }
    }
  }
  std::printf("\nLSTM training pass split in row_chunks: oneDNN's primitives vs the composed LSTM (best of repetitions)\n");
  std::printf("%-5s %6s %14s %13s %20s\n", "dtype", "batch", "primitive us", "composed us", "primitive/composed");
  for (int dtype : {0, 1}) {
    for (int64_t batch : kiln::kBatches) {
      const double primitive = reporter.best_ns(kiln::name_of(batch, dtype, 1, 2, 1));
      const double composed = reporter.best_ns(kiln::name_of(batch, dtype, 1, 2, 0));
      if (primitive == 0 || composed == 0) continue;
      std::printf("%-5s %6lld %14.1f %13.1f %19.2fx\n", dtype ? "bf16" : "f32", static_cast<long long>(batch),
                  primitive * 1e-3, composed * 1e-3, primitive / composed);
    }
  }
  return 0;
}
