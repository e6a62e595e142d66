// The thread-safety contract (docs/reliability.md): a built model's predict() may be called
// from several threads at once and returns bitwise the single-thread result; separate models
// train independently on separate threads. This test also runs under --config=tsan.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <thread>

#include "graph/trace.h"
#include "kiln.h"
#include "quant/quantize.h"
#include "runtime_export/inference_model.h"
#include "tests/tensor_compare.h"

#if defined(__SANITIZE_THREAD__)
// oneDNN is not TSan-instrumented: its internal caches synchronise through code TSan cannot
// see, so reports whose stack passes through libdnnl are noise. Races inside oneDNN's kernels
// (a shared scratchpad) are invisible to TSan anyway; the bitwise checks below catch those.
extern "C" const char* __tsan_default_suppressions() { return "race:libdnnl.so\n"; }
#endif

namespace kiln {
namespace {

using testing::bitwise_equal;

using namespace kiln::nn;

#ifdef KILN_SANITIZER
constexpr int kCallsPerThread = 3;  // sanitizers run 5-20x slower; the races show up anyway
#else
constexpr int kCallsPerThread = 25;
#endif

Tensor images(int64_t n, uint64_t seed, int64_t side = 12) { return random_uniform({n, side, side, 3}, -1.f, 1.f, seed); }

// Wide enough that oneDNN's kernels use scratchpads (a shared one broke predict() before).
std::unique_ptr<Sequential> conv_model(const std::string& prefix, bool dropout, int64_t width = 8) {
  Conv2DOptions same;
  same.padding = "same";
  std::vector<Layer> layers{Conv2D(width, 3, "", same, prefix + "_c1"), BatchNormalization({}, prefix + "_bn"),
                            Activation("relu", prefix + "_relu"), MaxPooling2D({2, 2}, {0, 0}, "valid", prefix + "_pool"),
                            Conv2D(2 * width, 3, "relu", same, prefix + "_c2"), Flatten(prefix + "_flat"),
                            Dense(16, "relu", {}, prefix + "_d1")};
  if (dropout) layers.push_back(Dropout(0.3f, 5, prefix + "_drop"));
  layers.push_back(Dense(4, "", {}, prefix + "_d2"));
  return std::make_unique<Sequential>(layers, prefix);
}

void run_threads(int n, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) threads.emplace_back(body, t);
  for (auto& t : threads) t.join();
}

TEST(Concurrency, SharedModelPredictIsBitwiseTheSingleThreadResult) {
  set_global_seed(1);
  auto model = conv_model("shared", /*dropout=*/true, /*width=*/32);
  model->build({28, 28, 3});
  Tensor x = images(64, 3, 28);
  Tensor expected = model->predict(x, 32);
  std::vector<int> mismatches(4, 0);
  run_threads(4, [&](int t) {
    for (int i = 0; i < kCallsPerThread; ++i) {
      // Different batch sizes per thread: different primitives run side by side.
      Tensor got = model->predict(x, t % 2 ? 32 : 64);
      if (!bitwise_equal(got, expected)) mismatches[t]++;
    }
  });
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(Concurrency, TracedGraphRunFromManyThreadsIsBitwiseTheSingleThreadResult) {
  set_global_seed(5);
  auto model = conv_model("graph", /*dropout=*/false, /*width=*/32);
  Tensor x = images(32, 3, 28);
  graph::Graph g = graph::trace(*model, x);
  Tensor expected = g.run(x);
  std::vector<int> mismatches(4, 0);
  run_threads(4, [&](int t) {
    for (int i = 0; i < kCallsPerThread; ++i) {
      if (!bitwise_equal(g.run(x), expected)) mismatches[t]++;
    }
  });
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

// InferenceModel: plans and packed weights are shared, workspaces are per call; f32 and int8.
TEST(Concurrency, InferenceModelsFromManyThreadsAreBitwiseTheSingleThreadResult) {
  set_global_seed(6);
  auto model = conv_model("infer", /*dropout=*/true, /*width=*/32);
  Tensor x = images(32, 3, 28);
  model->build({28, 28, 3});
  auto f32 = runtime_export::trace(*model, x);
  auto int8 = quant::quantize(*model, data::Dataset::from_tensor_slices(images(64, 4, 28)).batch(32));
  for (runtime_export::InferenceModel* m : {f32.get(), int8.get()}) {
    Tensor expected = m->run(x);
    std::vector<int> mismatches(4, 0);
    run_threads(4, [&](int t) {
      for (int i = 0; i < kCallsPerThread; ++i) {
        // Two batch sizes: a plan is made concurrently with calls of another.
        Tensor got = t % 2 ? m->run(x) : m->predict(x, 16);
        if (!bitwise_equal(got, expected)) mismatches[t]++;
      }
    });
    for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << (m == f32.get() ? "f32" : "int8") << " thread " << t;
  }
}

TEST(Concurrency, UnbuiltModelCalledFromManyThreadsBuildsOnce) {
  set_global_seed(2);
  auto model = conv_model("lazy", false);
  Tensor x = images(4, 4);
  std::vector<Tensor> outs(4);
  run_threads(4, [&](int t) { outs[t] = (*model)(x); });
  EXPECT_EQ(model->variables().size(), 12u);  // 2 conv + bn(4) + 2 dense, each built once
  for (int t = 1; t < 4; ++t) EXPECT_TRUE(bitwise_equal(outs[t], outs[0]));
}

// Trains a fresh model on a fresh dataset; everything random comes from this thread's seed
// sequence and the model's own layers, so the result must not depend on other threads.
std::vector<Tensor> train_alone(const std::string& prefix, uint64_t seed) {
  set_global_seed(seed);
  auto model = conv_model(prefix, /*dropout=*/true);
  model->build({12, 12, 3});
  model->compile(optim::Adam(1e-2f), SparseCategoricalCrossentropy(true));
  Tensor y = Tensor::from_int32({0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}, {16});
  data::Dataset ds = data::Dataset::from_tensor_slices(images(16, seed + 1), y).shuffle(16, 9).batch(4);
  model->fit(ds, {.epochs = 2, .verbose = 0});
  std::vector<Tensor> weights;
  for (const Variable& v : model->variables()) weights.push_back(v.value().clone_detached());
  return weights;
}

TEST(Concurrency, ModelsTrainedOnTwoThreadsMatchEachTrainedAlone) {
  std::vector<Tensor> alone_a = train_alone("a", 10), alone_b = train_alone("b", 20);
  std::vector<std::vector<Tensor>> together(2);
  run_threads(2, [&](int t) { together[t] = t == 0 ? train_alone("a", 10) : train_alone("b", 20); });
  ASSERT_EQ(together[0].size(), alone_a.size());
  ASSERT_EQ(together[1].size(), alone_b.size());
  for (size_t i = 0; i < alone_a.size(); ++i) EXPECT_TRUE(bitwise_equal(together[0][i], alone_a[i])) << "a var " << i;
  for (size_t i = 0; i < alone_b.size(); ++i) EXPECT_TRUE(bitwise_equal(together[1][i], alone_b[i])) << "b var " << i;
}

TEST(Concurrency, CustomLoopDropoutDrawsFreshMasksEachCall) {
  set_global_seed(3);
  Layer drop = Dropout(0.5f, 7);
  Tensor x = Tensor::ones({64});
  Tensor first = drop(x, true), second = drop(x, true);
  EXPECT_FALSE(bitwise_equal(first, second));  // outside a Trainer the layer counts its own calls
}

}  // namespace
}  // namespace kiln
