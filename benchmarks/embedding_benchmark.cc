// One training step of an embedding table (vocab 50,000 x 256, a batch of 32 x 128 tokens,
// loss = sum(rows * fixed weights), Adam) two ways, alternating in this one process:
//   gather:  tensor/ops/gather.h, whose gradient is a scatter-add into the rows used;
//   one_hot: the dense formulation Kiln had before (one_hot(ids) @ table), whose forward
//            builds a [tokens, vocab] one-hot and whose gradient is a [vocab, tokens] matmul.
// Prints the CPU, the best step time of each, their ratio, and the allocator's bytes in use
// above the baseline at the larger of two points: after the forward (the tape holds what the
// backward needs: one_hot's [tokens, vocab]) and after the gradient (the [vocab, dim] gradient).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "autograd/gradient_tape.h"
#include "benchmarks/machine.h"
#include "optim/adam.h"
#include "tensor/allocator.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"
#include "tensor/threading.h"

namespace kiln {
namespace {

constexpr int64_t kVocab = 50000, kDim = 256, kBatch = 32, kSteps = 128;

struct Result {
  double best_ms = 1e30;
  double peak_mb = 0;
};

template <typename Lookup>
void step(Variable& table, optim::Optimizer& opt, const Tensor& ids, const Tensor& weights, Lookup lookup,
          Result& r) {
  const size_t before = allocator_stats().bytes_in_use;
  auto t0 = std::chrono::steady_clock::now();
  {
    GradientTape tape;
    Tensor rows = lookup(table.value(), ids);  // [batch, steps, dim]
    Tensor loss = reduce_sum(rows * weights);
    const size_t forward_peak = allocator_stats().bytes_in_use;
    std::vector<Tensor> grads = tape.gradient(loss, std::vector<Variable>{table});
    const size_t peak = std::max(forward_peak, allocator_stats().bytes_in_use);
    r.peak_mb = std::max(r.peak_mb, (static_cast<double>(peak) - static_cast<double>(before)) / 1e6);
    opt.apply_gradients(grads, {table});
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  r.best_ms = std::min(r.best_ms, ms);
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  using namespace kiln;
  cpu::ThreadConfig threads = cpu::apply_best_known_config(argc, argv);
  std::printf("%s\n", bench::machine_header(threads.omp_num_threads).c_str());
  const int repeats = 5;
  Variable table_a(random_uniform({kVocab, kDim}, -0.05f, 0.05f, 1), "gather/embeddings");
  Variable table_b(table_a.value().clone_detached(), "one_hot/embeddings");
  optim::Adam adam_a(1e-3f), adam_b(1e-3f);
  Tensor ids = cast(random_uniform({kBatch, kSteps}, 0.f, static_cast<float>(kVocab), 2), DType::s32);
  Tensor weights = random_uniform({kBatch, kSteps, kDim}, -1.f, 1.f, 3);
  auto by_gather = [](const Tensor& t, const Tensor& i) { return gather(t, i, 0); };
  auto by_one_hot = [](const Tensor& t, const Tensor& i) {
    Tensor hot = one_hot(reshape(i, {kBatch * kSteps}), kVocab);  // [tokens, vocab]
    return reshape(matmul(hot, t), {kBatch, kSteps, kDim});
  };
  Result a, b;
  for (int k = 0; k < repeats; ++k) {
    step(table_a, adam_a, ids, weights, by_gather, a);
    step(table_b, adam_b, ids, weights, by_one_hot, b);
  }
  // Both ways compute the same step: the tables stay equal up to float summation order.
  std::vector<float> va = table_a.value().to_vector(), vb = table_b.value().to_vector();
  double diff = 0;
  for (size_t i = 0; i < va.size(); ++i) diff = std::max(diff, static_cast<double>(std::fabs(va[i] - vb[i])));
  std::printf("embedding step: vocab %lld x dim %lld, batch %lld x %lld tokens, Adam; best of %d\n",
              static_cast<long long>(kVocab), static_cast<long long>(kDim), static_cast<long long>(kBatch),
              static_cast<long long>(kSteps), repeats);
  std::printf("%-8s %10s %14s\n", "lookup", "step ms", "peak MB above");
  std::printf("%-8s %10.2f %14.1f\n", "gather", a.best_ms, a.peak_mb);
  std::printf("%-8s %10.2f %14.1f\n", "one_hot", b.best_ms, b.peak_mb);
  std::printf("one_hot/gather: time %.2fx, peak memory %.2fx; tables differ by at most %.3g after %d steps\n",
              b.best_ms / a.best_ms, b.peak_mb / a.peak_mb, diff, repeats);
  return 0;
}
