// scaled_dot_product_attention (forward, f32, no mask) against the sum of the raw oneDNN
// primitives it is made of, run back to back on preallocated buffers with no Kiln code
// between them: matmul q @ k^T with the scale as output scale, softmax over the keys in
// place, matmul weights @ v. The op (no mask: the same oneDNN softmax, out of place into the
// buffer it returns) adds its allocations and its checks. Shapes: a ViT block on 28x28
// patches and a small language model's. Prints the CPU, the times and op time / primitives
// time (the target: within 15%, i.e. <= 1.15).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
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

struct Shape4 {
  const char* name;
  int64_t b, h, t, d;
};
const std::vector<Shape4> kShapes = {{"vit_b64_h4_t49_d16", 64, 4, 49, 16}, {"lm_b16_h4_t128_d32", 16, 4, 128, 32}};

struct Inputs {
  Tensor q, k, v;
};
Inputs inputs_for(const Shape4& s) {
  return {random_uniform({s.b, s.h, s.t, s.d}, -1, 1, 1), random_uniform({s.b, s.h, s.t, s.d}, -1, 1, 2),
          random_uniform({s.b, s.h, s.t, s.d}, -1, 1, 3)};
}

void BM_AttentionOp(benchmark::State& state) {
  Inputs in = inputs_for(kShapes[state.range(0)]);
  for (auto _ : state) benchmark::DoNotOptimize(scaled_dot_product_attention(in.q, in.k, in.v).raw_data());
}

void BM_RawPrimitives(benchmark::State& state) {
  const Shape4& s = kShapes[state.range(0)];
  Inputs in = inputs_for(s);
  Tensor kt = transpose(in.k);  // a strided view, as the op passes it
  Tensor scores = Tensor::empty({s.b, s.h, s.t, s.t}), out = Tensor::empty({s.b, s.h, s.t, s.d});
  const float scale = 1.f / std::sqrt(static_cast<float>(s.d));
  dnnl::primitive_attr scaled = onednn::default_attr();
  scaled.set_output_scales(0, {scale});
  auto qk_pd = dnnl::matmul::primitive_desc(
      dnnl::matmul::desc(onednn::desc_of(in.q), onednn::desc_of(kt), onednn::desc_of(scores)), scaled, onednn::cpu_engine());
  auto sm_md = onednn::desc_of(scores);
  auto sm_pd = dnnl::softmax_v2_forward::primitive_desc(
      dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::softmax_accurate, sm_md, sm_md, 3),
      onednn::default_attr(), onednn::cpu_engine());
  auto pv_pd = dnnl::matmul::primitive_desc(
      dnnl::matmul::desc(onednn::desc_of(scores), onednn::desc_of(in.v), onednn::desc_of(out)), onednn::default_attr(),
      onednn::cpu_engine());
  dnnl::matmul qk(qk_pd), pv(pv_pd);
  dnnl::softmax_v2_forward sm(sm_pd);
  size_t scratch = std::max({qk_pd.scratchpad_desc().get_size(), sm_pd.scratchpad_desc().get_size(),
                             pv_pd.scratchpad_desc().get_size()});
  Tensor pad = Tensor::empty({static_cast<int64_t>(scratch / 4 + 16)});
  dnnl::memory pad_mem(dnnl::memory::desc({static_cast<int64_t>(scratch)}, dnnl::memory::data_type::u8, dnnl::memory::format_tag::a),
                       onednn::cpu_engine(), pad.raw_data());
  dnnl::memory qm = onednn::memory_of(in.q), km = onednn::memory_of(kt), vm = onednn::memory_of(in.v);
  dnnl::memory sm_mem = onednn::memory_of(scores), om = onednn::memory_of(out);
  dnnl::stream stream(onednn::cpu_engine());
  auto run = [&] {
    qk.execute(stream, {{DNNL_ARG_SRC, qm}, {DNNL_ARG_WEIGHTS, km}, {DNNL_ARG_DST, sm_mem}, {DNNL_ARG_SCRATCHPAD, pad_mem}});
    sm.execute(stream, {{DNNL_ARG_SRC, sm_mem}, {DNNL_ARG_DST, sm_mem}, {DNNL_ARG_SCRATCHPAD, pad_mem}});
    pv.execute(stream, {{DNNL_ARG_SRC, sm_mem}, {DNNL_ARG_WEIGHTS, vm}, {DNNL_ARG_DST, om}, {DNNL_ARG_SCRATCHPAD, pad_mem}});
    stream.wait();
  };
  run();
  // Same values as the op's, or the comparison means nothing.
  std::vector<float> want = scaled_dot_product_attention(in.q, in.k, in.v).to_vector(), got = out.to_vector();
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::fabs(want[i] - got[i]) > 1e-5f + 1e-4f * std::fabs(want[i])) {
      state.SkipWithError("the raw primitives' output differs from the op's");
      return;
    }
  }
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(out.raw_data());
  }
}

void register_all() {
  for (int64_t i = 0; i < static_cast<int64_t>(kShapes.size()); ++i) {
    for (auto* fn : {BM_AttentionOp, BM_RawPrimitives}) {
      std::string name = fn == BM_AttentionOp ? "BM_AttentionOp" : "BM_RawPrimitives";
      benchmark::RegisterBenchmark(name.c_str(), fn)->Arg(i)->Unit(benchmark::kMicrosecond)->UseRealTime();
    }
  }
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  kiln::bench::RatioReporter reporter;
  if (!kiln::bench::run_benchmarks_with_header(argc, argv, kiln::register_all, reporter)) return 1;
  std::printf("\nscaled_dot_product_attention forward vs its raw oneDNN primitives (best of repetitions)\n");
  std::printf("%-22s %12s %14s %12s\n", "shape", "op us", "primitives us", "op/prims");
  for (size_t i = 0; i < kiln::kShapes.size(); ++i) {
    std::string suffix = "/" + std::to_string(i) + "/real_time";
    double op = reporter.best_ns("BM_AttentionOp" + suffix), raw = reporter.best_ns("BM_RawPrimitives" + suffix);
    if (op == 0 || raw == 0) continue;
    std::printf("%-22s %12.1f %14.1f %11.2fx\n", kiln::kShapes[i].name, op * 1e-3, raw * 1e-3, op / raw);
  }
  return 0;
}
