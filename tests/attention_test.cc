// scaled_dot_product_attention beyond its op-table row: against the naive composition of Kiln
// ops (forward and gradients), queries with no key left, what its backward keeps alive,
// dropout, bf16, bad input, and every backend: trace, Graph::run, the inference plan, ONNX
// export run by ONNX Runtime and imported back.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "autograd/gradient_tape.h"
#include "graph/trace.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tensor/allocator.h"
#include "tensor/ops/ops.h"
#include "tests/gradcheck.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"

namespace kiln {
namespace {

using testing::rand_tensor;

void expect_close(const Tensor& a, const Tensor& b, double atol, double rtol, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  std::vector<float> x = a.to_vector(), y = b.to_vector();
  int bad = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(std::fabs(x[i] - y[i]) <= atol + rtol * std::fabs(y[i])) && ++bad <= 5) {
      ADD_FAILURE() << what << " [" << i << "]: " << x[i] << " vs " << y[i];
    }
  }
}

// The composition attention replaces, as Keras's masked Softmax layer computes it: matmul,
// scale, masked scores set to -1e9, softmax, masked weights set to 0, matmul.
Tensor naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& keep, float scale) {
  Tensor s = matmul(q, transpose(k)) * Tensor::scalar(scale);
  if (!keep.defined()) return matmul(softmax(s, -1), v);
  s = s * keep + (keep - Tensor::scalar(1.f)) * Tensor::scalar(1e9f);
  return matmul(softmax(s, -1) * keep, v);
}

Tensor random_keep(const Shape& shape, uint64_t seed) {
  return greater(rand_tensor(shape, seed), Tensor::scalar(-0.3f));  // 1 where kept, mostly
}

TEST(Attention, MatchesTheNaiveCompositionForwardAndBackward) {
  Tensor q = rand_tensor({2, 3, 5, 8}, 1), k = rand_tensor({2, 3, 7, 8}, 2), v = rand_tensor({2, 3, 7, 4}, 3);
  Tensor keep = random_keep({2, 1, 5, 7}, 4);
  const float scale = 1.f / std::sqrt(8.f);
  std::vector<Tensor> fused_grads, naive_grads;
  Tensor r = rand_tensor({2, 3, 5, 4}, 5);
  for (bool fused : {true, false}) {
    Tensor qv = q.clone_detached(), kv = k.clone_detached(), vv = v.clone_detached();
    GradientTape tape;
    tape.watch(qv); tape.watch(kv); tape.watch(vv);
    Tensor y = fused ? scaled_dot_product_attention(qv, kv, vv, keep) : naive_attention(qv, kv, vv, keep, scale);
    Tensor loss = reduce_sum(y * r, {});
    auto g = tape.gradient(loss, {qv, kv, vv});
    (fused ? fused_grads : naive_grads) = g;
    if (!fused) continue;
    expect_close(y, naive_attention(q, k, v, keep, scale), 1e-5, 1e-4, "forward");
  }
  for (int i = 0; i < 3; ++i) expect_close(fused_grads[i], naive_grads[i], 1e-5, 1e-4, "gradient " + std::to_string(i));
}

// A masked key's weight is exactly 0, so a query that sees no key gets zero weights and a
// zero output, as Keras's masked Softmax layer gives (tests/data/multi_head_attention holds
// Keras 3.15.1's outputs for such a query). No NaN, and no gradient to q or k.
TEST(Attention, AQueryWithNoKeyLeftGetsZeroWeightsAndPassesNoGradient) {
  Tensor q = rand_tensor({1, 1, 3, 4}, 1), k = rand_tensor({1, 1, 5, 4}, 2), v = rand_tensor({1, 1, 5, 2}, 3);
  Tensor mask = Tensor::from_vector({1, 0, 1, 0, 0,  //
                                     0, 0, 0, 0, 0,  // query 1 sees nothing
                                     1, 1, 1, 1, 1},
                                    {1, 1, 3, 5});
  GradientTape tape;
  tape.watch(q); tape.watch(k);
  Tensor y = scaled_dot_product_attention(q, k, v, mask);
  std::vector<float> out = y.to_vector();
  EXPECT_EQ(out[2], 0.f);
  EXPECT_EQ(out[3], 0.f);
  auto g = tape.gradient(reduce_sum(y, {}), {q, k});
  std::vector<float> gq = g[0].to_vector();
  for (float x : gq) EXPECT_FALSE(std::isnan(x));
  for (int d = 0; d < 4; ++d) EXPECT_EQ(gq[4 + d], 0.f) << "query 1, depth " << d;
  // An additive mask of -inf everywhere in a row reads the same way.
  Tensor bias = Tensor::full({3, 5}, 0.f);
  float* b = bias.data<float>();
  for (int j = 0; j < 5; ++j) b[5 + j] = -std::numeric_limits<float>::infinity();
  Tensor ya = scaled_dot_product_attention(q, k, v, bias, {.mask_kind = AttentionMask::additive});
  EXPECT_EQ(ya.to_vector()[2], 0.f);
  EXPECT_EQ(ya.to_vector()[3], 0.f);
}

// The tape holds the output and the attention weights beyond the inputs, not the scores
// (the composition keeps the scores as the scaling's input, and the weights).
TEST(Attention, BackwardKeepsOnlyTheWeights) {
  Tensor q = rand_tensor({4, 4, 64, 32}, 1), k = rand_tensor({4, 4, 64, 32}, 2), v = rand_tensor({4, 4, 64, 32}, 3);
  const size_t weights_bytes = 4 * 4 * 64 * 64 * sizeof(float), out_bytes = q.nbytes();
  auto retained = [&](bool fused) {
    release_cached_memory();
    GradientTape tape;
    tape.watch(q); tape.watch(k); tape.watch(v);
    size_t before = allocator_stats().bytes_in_use;
    Tensor y = fused ? scaled_dot_product_attention(q, k, v) : naive_attention(q, k, v, Tensor(), 0.125f);
    size_t after = allocator_stats().bytes_in_use;
    return after - before;
  };
  retained(true);  // the first call may leave per-thread scratch memory behind; it is not the tape's
  size_t fused = retained(true), naive = retained(false);
  EXPECT_EQ(fused, weights_bytes + out_bytes);
  EXPECT_GE(naive, 2 * weights_bytes + out_bytes);  // its matmul's output and the softmax's
}

TEST(Attention, DropoutIsSeededAndDifferentiable) {
  Tensor q = rand_tensor({2, 6, 4}, 1), k = rand_tensor({2, 9, 4}, 2), v = rand_tensor({2, 9, 3}, 3);
  AttentionOptions o{.dropout_rate = 0.4f, .dropout_seed = 17};
  Tensor a = scaled_dot_product_attention(q, k, v, Tensor(), o), b = scaled_dot_product_attention(q, k, v, Tensor(), o);
  expect_close(a, b, 0, 0, "same seed");
  o.dropout_seed = 18;
  Tensor c = scaled_dot_product_attention(q, k, v, Tensor(), o);
  EXPECT_NE(a.to_vector(), c.to_vector());
  // With v = identity rows, the output is the dropped-out weights: a fraction near the rate is 0.
  Tensor eye = Tensor::zeros({1, 200, 200});
  for (int i = 0; i < 200; ++i) eye.data<float>()[i * 200 + i] = 1.f;
  Tensor w = scaled_dot_product_attention(rand_tensor({1, 50, 4}, 4), rand_tensor({1, 200, 4}, 5), eye, Tensor(),
                                          {.dropout_rate = 0.4f, .dropout_seed = 3});
  int zeros = 0;
  for (float x : w.to_vector()) zeros += x == 0.f;
  EXPECT_NEAR(zeros / 10000.0, 0.4, 0.03);
  // A fixed seed makes the op a fixed function: its gradients check by finite differences
  // against itself in double through the weights it drops.
  o.dropout_seed = 5;
  auto fn = [o](const std::vector<Tensor>& x) { return scaled_dot_product_attention(x[0], x[1], x[2], Tensor(), o); };
  Tensor y0 = fn({q, k, v});
  Tensor r = rand_tensor(y0.shape(), 9);
  GradientTape tape;
  Tensor qv = q.clone_detached();
  tape.watch(qv);
  auto g = tape.gradient(reduce_sum(fn({qv, k, v}) * r, {}), std::vector<Tensor>{qv});
  std::vector<float> gq = g[0].to_vector();
  for (int64_t i = 0; i < q.numel(); i += 5) {
    Tensor plus = q.clone_detached(), minus = q.clone_detached();
    plus.data<float>()[i] += 1e-2f;
    minus.data<float>()[i] -= 1e-2f;
    double fd = (reduce_sum(fn({plus, k, v}) * r, {}).item() - reduce_sum(fn({minus, k, v}) * r, {}).item()) / 2e-2;
    EXPECT_NEAR(gq[i], fd, 2e-3) << "element " << i;
  }
}

TEST(Attention, Bf16FollowsF32) {
  Tensor q = rand_tensor({2, 2, 6, 16}, 1), k = rand_tensor({2, 2, 9, 16}, 2), v = rand_tensor({2, 2, 9, 8}, 3);
  AttentionOptions o{.causal = true};
  Tensor y = scaled_dot_product_attention(q, k, v, Tensor(), o);
  Tensor yb = scaled_dot_product_attention(cast(q, DType::bf16), cast(k, DType::bf16), cast(v, DType::bf16), Tensor(), o);
  EXPECT_EQ(yb.dtype(), DType::bf16);
  expect_close(cast(yb, DType::f32), y, 3e-2, 3e-2, "bf16");
  GradientTape tape;
  Tensor qb = cast(q, DType::bf16);
  tape.watch(qb);
  auto g = tape.gradient(reduce_sum(cast(scaled_dot_product_attention(qb, cast(k, DType::bf16), cast(v, DType::bf16), Tensor(), o), DType::f32), {}), std::vector<Tensor>{qb});
  GradientTape tape32;
  Tensor q32 = q.clone_detached();
  tape32.watch(q32);
  auto g32 = tape32.gradient(reduce_sum(scaled_dot_product_attention(q32, k, v, Tensor(), o), {}), std::vector<Tensor>{q32});
  EXPECT_EQ(g[0].dtype(), DType::bf16);
  expect_close(cast(g[0], DType::f32), g32[0], 3e-2, 5e-2, "bf16 gradient");
}

TEST(Attention, BadInputNamesTheShapes) {
  Tensor q = rand_tensor({2, 5, 8}, 1), k = rand_tensor({2, 7, 8}, 2), v = rand_tensor({2, 7, 4}, 3);
  auto throws_with = [](auto f, const std::string& text) {
    try {
      f();
      ADD_FAILURE() << "no exception, expected one saying " << text;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  throws_with([&] { scaled_dot_product_attention(q, rand_tensor({2, 7, 6}, 4), v); }, "depths differ: f32[2, 5, 8]");
  throws_with([&] { scaled_dot_product_attention(q, k, rand_tensor({2, 6, 4}, 4)); }, "lengths differ");
  throws_with([&] { scaled_dot_product_attention(q, rand_tensor({3, 7, 8}, 4), v); }, "leading dimensions");
  throws_with([&] { scaled_dot_product_attention(q, k, v, rand_tensor({5, 6}, 4)); }, "does not broadcast to the scores [2, 5, 7]");
  throws_with([&] { scaled_dot_product_attention(q, k, cast(v, DType::bf16)); }, "dtypes differ");
  throws_with([&] { scaled_dot_product_attention(q, k, v, Tensor(), {.dropout_rate = 1.f}); }, "dropout_rate");
  throws_with([&] { scaled_dot_product_attention(q, k, v, Tensor::zeros({5, 7}, DType::u8), {.mask_kind = AttentionMask::additive}); },
              "additive mask must be f32 or bf16");
}

// One traced node, which Graph::run, the inference plan, ONNX Runtime (on the exported
// MatMul/Softmax pieces) and the imported graph all reproduce.
TEST(Attention, EveryBackendRunsIt) {
  Tensor q = rand_tensor({2, 2, 5, 8}, 1), k = rand_tensor({2, 2, 6, 8}, 2), v = rand_tensor({2, 2, 6, 3}, 3);
  Tensor keep = random_keep({2, 1, 5, 6}, 7);
  // and one query with no key left
  for (int j = 0; j < 6; ++j) keep.data<float>()[j] = 0.f;
  Tensor bias = rand_tensor({5, 6}, 8);
  struct Variant {
    const char* name;
    std::function<Tensor(const std::vector<Tensor>&)> fn;
    std::vector<Tensor> inputs;
  };
  std::vector<Variant> variants = {
      {"boolean", [](const std::vector<Tensor>& x) { return scaled_dot_product_attention(x[0], x[1], x[2], x[3]); },
       {q, k, v, keep}},
      {"causal+additive", [bias](const std::vector<Tensor>& x) {
         return scaled_dot_product_attention(x[0], x[1], x[2], bias, {.scale = 0.3, .causal = true, .mask_kind = AttentionMask::additive});
       },
       {q, k, v}},
      {"causal+boolean", [](const std::vector<Tensor>& x) {
         return scaled_dot_product_attention(x[0], x[1], x[2], x[3], {.causal = true});
       },
       {q, k, v, keep}},
  };
  for (const Variant& var : variants) {
    SCOPED_TRACE(var.name);
    Tensor eager = var.fn(var.inputs);
    graph::Graph g = graph::trace([&](const std::vector<Tensor>& x) { return std::vector<Tensor>{var.fn(x)}; }, var.inputs);
    int attention_nodes = 0;
    for (const auto& n : g.nodes) attention_nodes += n.call.op() == "scaled_dot_product_attention";
    EXPECT_EQ(attention_nodes, 1);
    expect_close(g.run(var.inputs)[0], eager, 0, 0, "Graph::run");
    runtime_export::InferenceModel im(g);
    expect_close(im.run(var.inputs)[0], eager, 0, 0, "InferenceModel");
    std::string path = testing::temp_path(std::string("attention_") + var.name + ".onnx");
    runtime_export::export_onnx(g, path);
    testing::onnx_checker(path);
    auto ort = testing::run_onnx_runtime(path, var.inputs);
    ASSERT_TRUE(ort.has_value());
    expect_close((*ort)[0], eager, 1e-5, 1e-4, "ONNX Runtime");
    graph::Graph imported = runtime_export::import_onnx(path);
    expect_close(imported.run(var.inputs)[0], eager, 1e-5, 1e-4, "imported");
  }
}

}  // namespace
}  // namespace kiln
