// One training step of an embedding table (vocab 50,000 x 256, a batch of 32 x 128 tokens,
// loss = sum(rows * fixed weights)) several ways, alternating in this one process:
//   gather:        tensor/ops/gather.h, whose gradient is row-sparse (tensor/row_sparse.h):
//                  the rows used, duplicates summed, applied by the optimizer from those rows;
//   gather dense:  the same gradient made dense (plain()) before the optimizer, which is what
//                  Kiln did before the row-sparse gradient: a [vocab, dim] scatter-add target;
//   one_hot:       the dense formulation (one_hot(ids) @ table), whose forward builds a
//                  [tokens, vocab] one-hot and whose gradient is a [vocab, tokens] matmul.
// With Adam (Keras's dense formula: every row's moments decay, so the update still sweeps the
// table) and with plain SGD (which touches only the rows used; one_hot is left out there).
// Prints the CPU, the best step time of each, their ratios, and the allocator's bytes in use
// above the baseline at the largest of: after the forward (the tape holds what the backward
// needs: one_hot's [tokens, vocab]), after the gradient, and after making it dense.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/gradient_tape.h"
#include "benchmarks/args.h"
#include "benchmarks/machine.h"
#include "optim/adam.h"
#include "optim/sgd.h"
#include "tensor/allocator.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"
#include "tensor/threading.h"

namespace kiln {
namespace {

constexpr int64_t kDim = 256, kBatch = 32, kSteps = 128;

struct Result {
  double best_ms = 1e30;
  double peak_mb = 0;
};

template <typename Lookup>
void step(Variable& table, optim::Optimizer& opt, const Tensor& ids, const Tensor& weights, Lookup lookup,
          bool densify, Result& r) {
  const size_t before = allocator_stats().bytes_in_use;
  auto t0 = std::chrono::steady_clock::now();
  {
    GradientTape tape;
    Tensor rows = lookup(table.value(), ids);  // [batch, steps, dim]
    Tensor loss = reduce_sum(rows * weights);
    const size_t forward_peak = allocator_stats().bytes_in_use;
    std::vector<Tensor> grads = tape.gradient(loss, std::vector<Variable>{table});
    if (densify) grads[0] = grads[0].plain();
    const size_t peak = std::max(forward_peak, allocator_stats().bytes_in_use);
    r.peak_mb = std::max(r.peak_mb, (static_cast<double>(peak) - static_cast<double>(before)) / 1e6);
    opt.apply_gradients(grads, {table});
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  r.best_ms = std::min(r.best_ms, ms);
}

double max_diff(const Variable& a, const Variable& b) {
  std::vector<float> va = a.value().to_vector(), vb = b.value().to_vector();
  double diff = 0;
  for (size_t i = 0; i < va.size(); ++i) diff = std::max(diff, static_cast<double>(std::fabs(va[i] - vb[i])));
  return diff;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  using namespace kiln;
  cpu::ThreadConfig threads = cpu::apply_best_known_config(argc, argv);
  std::printf("%s\n", bench::machine_header(threads.omp_num_threads).c_str());
  // --vocab and --repeats shrink the run for CI's smoke test (benchmarks/smoke_*_test.sh).
  int64_t vocab = 0, repeats = 0;
  try {
    vocab = bench::arg_int(argc, argv, "vocab", 50000, 1);
    repeats = bench::arg_int(argc, argv, "repeats", 5, 1);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "embedding_benchmark: %s\n", e.what());
    return 1;
  }
  Tensor start = random_uniform({vocab, kDim}, -0.05f, 0.05f, 1);
  Tensor ids = cast(random_uniform({kBatch, kSteps}, 0.f, static_cast<float>(vocab), 2), DType::s32);
  Tensor weights = random_uniform({kBatch, kSteps, kDim}, -1.f, 1.f, 3);
  auto by_gather = [](const Tensor& t, const Tensor& i) { return gather(t, i, 0); };
  auto by_one_hot = [vocab](const Tensor& t, const Tensor& i) {
    Tensor hot = one_hot(reshape(i, {kBatch * kSteps}), vocab);  // [tokens, vocab]
    return reshape(matmul(hot, t), {kBatch, kSteps, kDim});
  };
  struct Way {
    const char* name;
    bool one_hot, densify;
  };
  const Way ways[] = {{"gather", false, false}, {"gather dense", false, true}, {"one_hot", true, false}};
  struct Run {
    Variable table;
    std::unique_ptr<optim::Optimizer> opt;
    Result r;
  };
  std::vector<std::vector<Run>> runs(2);  // [Adam, SGD][way]
  for (int o = 0; o < 2; ++o) {
    for (const Way& w : ways) {
      std::unique_ptr<optim::Optimizer> opt;
      if (o == 0) {
        opt = std::make_unique<optim::Adam>(1e-3f);
      } else {
        opt = std::make_unique<optim::SGD>(0.1f);
      }
      runs[o].push_back({Variable(start.clone_detached(), std::string(w.name) + "/embeddings"), std::move(opt), {}});
    }
  }
  for (int k = 0; k < repeats; ++k) {
    for (int o = 0; o < 2; ++o) {
      for (size_t w = 0; w < std::size(ways); ++w) {
        if (o == 1 && ways[w].one_hot) continue;  // seconds a step; measured with Adam
        Run& run = runs[o][w];
        if (ways[w].one_hot) {
          step(run.table, *run.opt, ids, weights, by_one_hot, ways[w].densify, run.r);
        } else {
          step(run.table, *run.opt, ids, weights, by_gather, ways[w].densify, run.r);
        }
      }
    }
  }
  std::printf("embedding step: vocab %lld x dim %lld, batch %lld x %lld tokens; best of %d\n",
              static_cast<long long>(vocab), static_cast<long long>(kDim), static_cast<long long>(kBatch),
              static_cast<long long>(kSteps), static_cast<int>(repeats));
  const char* opt_names[] = {"Adam", "SGD"};
  std::printf("%-6s %-13s %10s %14s\n", "optim", "lookup", "step ms", "peak MB above");
  for (int o = 0; o < 2; ++o) {
    for (size_t w = 0; w < std::size(ways); ++w) {
      if (o == 1 && ways[w].one_hot) continue;
      std::printf("%-6s %-13s %10.2f %14.1f\n", opt_names[o], ways[w].name, runs[o][w].r.best_ms, runs[o][w].r.peak_mb);
    }
  }
  // Every way computes the same steps: the tables agree up to float summation order.
  const Result &adam_sparse = runs[0][0].r, &adam_dense = runs[0][1].r, &adam_hot = runs[0][2].r;
  std::printf("Adam: gather dense/gather time %.2fx, peak memory %.2fx; one_hot/gather time %.2fx, peak memory %.2fx; "
              "tables differ by at most %.3g (dense) and %.3g (one_hot) after %d steps\n",
              adam_dense.best_ms / adam_sparse.best_ms, adam_dense.peak_mb / adam_sparse.peak_mb,
              adam_hot.best_ms / adam_sparse.best_ms, adam_hot.peak_mb / adam_sparse.peak_mb,
              max_diff(runs[0][0].table, runs[0][1].table), max_diff(runs[0][0].table, runs[0][2].table),
              static_cast<int>(repeats));
  const Result &sgd_sparse = runs[1][0].r, &sgd_dense = runs[1][1].r;
  std::printf("SGD: gather dense/gather time %.2fx, peak memory %.2fx; tables differ by at most %.3g after %d steps\n",
              sgd_dense.best_ms / sgd_sparse.best_ms, sgd_dense.peak_mb / sgd_sparse.peak_mb,
              max_diff(runs[1][0].table, runs[1][1].table), static_cast<int>(repeats));
  return 0;
}
