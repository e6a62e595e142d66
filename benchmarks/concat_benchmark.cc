// Kiln's concat (its own one-pass copy, tensor/ops/concat_kernel.h) against the alternative it
// replaced: oneDNN's concat primitive, cached like every Kiln primitive and chunked so each call
// stays within the primitive arguments that fit on execute()'s stack. Both run in this one
// process, alternating, at 2, 16 and 1,000 inputs in two shapes:
//   rows:     predict()'s case, batch outputs f32[32, 10] stacked along axis 0;
//   channels: a 16 MB f32 output [512, 8000] cut into equal pieces along axis 1.
// Prints the CPU, each time, and oneDNN time / Kiln time.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <vector>

#include "benchmarks/ratio_reporter.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"

namespace kiln {
namespace {

// Inputs per oneDNN call: with the destination and the scratchpad, 16 arguments.
constexpr size_t kChunk = 14;
constexpr int64_t kChannels = 8000, kChannelRows = 512;

std::vector<Tensor> inputs_for(const benchmark::State& s, int* axis) {
  const int64_t n = s.range(0);
  const bool rows = s.range(1) == 0;
  *axis = rows ? 0 : 1;
  std::vector<Tensor> xs;
  for (int64_t i = 0; i < n; ++i) {
    Shape shape = rows ? Shape{32, 10} : Shape{kChannelRows, kChannels / n};
    xs.push_back(random_uniform(shape, -1, 1, static_cast<uint64_t>(i + 1)));
  }
  return xs;
}

Shape concat_shape(const std::vector<Tensor>& xs, int axis) {
  Shape out = xs[0].shape();
  out[axis] = 0;
  for (const Tensor& t : xs) out[axis] += t.shape()[axis];
  return out;
}

// Concat as oneDNN would do it for Kiln: one cached primitive per chunk of inputs, each writing
// its window of the output through a strided destination descriptor.
Tensor onednn_chunked_concat(const std::vector<Tensor>& xs, int axis) {
  Tensor out = Tensor::empty(concat_shape(xs, axis), xs[0].dtype());
  int64_t at = 0;
  for (size_t begin = 0; begin < xs.size(); begin += kChunk) {
    const size_t end = std::min(xs.size(), begin + kChunk);
    Shape window_shape = out.shape();
    window_shape[axis] = 0;
    for (size_t i = begin; i < end; ++i) window_shape[axis] += xs[i].shape()[axis];
    Tensor window = out.alias(window_shape, out.strides(), at * out.strides()[axis]);
    at += window_shape[axis];
    onednn::KeyBuilder key("concat");
    key.add(int64_t{axis}).add(window);
    std::vector<dnnl::memory::desc> mds;
    for (size_t i = begin; i < end; ++i) {
      mds.push_back(onednn::desc_of(xs[i]));
      key.add(xs[i]);
    }
    dnnl::memory::desc dst_md = onednn::desc_of(window);
    auto prim = onednn::cached<dnnl::concat>("concat", key, [&] {
      return dnnl::concat::primitive_desc(dst_md, axis, mds, onednn::cpu_engine(), onednn::default_attr());
    });
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_DST, onednn::memory_of(window, dst_md)}};
    for (size_t i = begin; i < end; ++i) {
      args[DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i - begin)] = onednn::memory_of(xs[i], mds[i - begin]);
    }
    onednn::execute("concat", prim.primitive, args);
  }
  return out;
}

void BM_ConcatKiln(benchmark::State& s) {
  int axis;
  std::vector<Tensor> xs = inputs_for(s, &axis);
  for (auto _ : s) benchmark::DoNotOptimize(concat(xs, axis).raw_data());
  s.SetBytesProcessed(s.iterations() * numel(concat_shape(xs, axis)) * 4);
}

void BM_ConcatOnednn(benchmark::State& s) {
  int axis;
  std::vector<Tensor> xs = inputs_for(s, &axis);
  // Same values as Kiln's, or the comparison means nothing.
  if (onednn_chunked_concat(xs, axis).to_vector() != concat(xs, axis).to_vector()) {
    s.SkipWithError("oneDNN chunked concat differs from Kiln's");
    return;
  }
  for (auto _ : s) benchmark::DoNotOptimize(onednn_chunked_concat(xs, axis).raw_data());
  s.SetBytesProcessed(s.iterations() * numel(concat_shape(xs, axis)) * 4);
}

const std::vector<int64_t> kCounts = {2, 16, 1000};

void register_all() {
  for (int64_t layout : {0, 1}) {
    for (int64_t n : kCounts) {
      for (auto* fn : {BM_ConcatKiln, BM_ConcatOnednn}) {
        std::string name = fn == BM_ConcatKiln ? "BM_ConcatKiln" : "BM_ConcatOnednn";
        benchmark::RegisterBenchmark(name.c_str(), fn)->Args({n, layout})->Unit(benchmark::kMicrosecond)->UseRealTime();
      }
    }
  }
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  kiln::bench::RatioReporter reporter;
  if (!kiln::bench::run_benchmarks_with_header(argc, argv, kiln::register_all, reporter)) return 1;
  std::printf("\nconcat: Kiln's copy vs oneDNN chunked by %zu (best of repetitions)\n", kiln::kChunk);
  std::printf("%-10s %7s %12s %12s %14s\n", "shape", "inputs", "kiln us", "onednn us", "onednn/kiln");
  for (int layout : {0, 1}) {
    for (int64_t n : kiln::kCounts) {
      std::string suffix = "/" + std::to_string(n) + "/" + std::to_string(layout) + "/real_time";
      double kiln_ns = reporter.best_ns("BM_ConcatKiln" + suffix);
      double onednn_ns = reporter.best_ns("BM_ConcatOnednn" + suffix);
      if (kiln_ns == 0 || onednn_ns == 0) continue;
      std::printf("%-10s %7lld %12.2f %12.2f %13.2fx\n", layout == 0 ? "rows" : "channels", static_cast<long long>(n),
                  kiln_ns * 1e-3, onednn_ns * 1e-3, onednn_ns / kiln_ns);
    }
  }
  return 0;
}
