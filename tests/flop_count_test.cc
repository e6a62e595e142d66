// The training-step FLOP count of //benchmarks:compare against the counts worked out by hand.
#include "benchmarks/flop_count.h"

#include <gtest/gtest.h>

#include "graph/trace.h"
#include "nn/applications/applications.h"
#include "nn/applications/vision_transformer.h"
#include "nn/layers/layers.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"

namespace kiln {
namespace {

TEST(FlopCountTest, MlpCountsEveryDenseForwardAndAllButTheFirstDataGradient) {
  auto model = nn::applications::fashion_mnist_mlp();
  Tensor x = cast(random_uniform({4, 28, 28, 1}, 0.f, 255.f, 1), DType::u8);
  (*model)(x);
  graph::Graph g = graph::trace(*model, x);
  const double b = 32;
  const double l1 = 2 * b * 784 * 128, l2 = 2 * b * 128 * 64, l3 = 2 * b * 64 * 10;
  bench::StepFlops f = bench::count_step_flops(g, 32);
  EXPECT_DOUBLE_EQ(f.forward, l1 + l2 + l3);
  // Kernel gradients of all three; data gradients of the second and third only (the first
  // layer's input is the image, which needs none).
  EXPECT_DOUBLE_EQ(f.backward, (l1 + l2 + l3) + (l2 + l3));
  EXPECT_DOUBLE_EQ(f.training(), f.forward + f.backward);
}

TEST(FlopCountTest, ConvolutionsCountKernelElementsPerOutputPixel) {
  auto model = nn::applications::keras_cnn();
  Tensor x = cast(random_uniform({2, 28, 28, 1}, 0.f, 255.f, 1), DType::u8);
  (*model)(x);
  graph::Graph g = graph::trace(*model, x);
  const double b = 8;
  // same-padded 3x3 convolutions at 28, 14 and 7 pixels; dense 576 -> 128 -> 10.
  const double c1 = 2 * b * 28 * 28 * 16 * (3 * 3 * 1), c2 = 2 * b * 14 * 14 * 32 * (3 * 3 * 16),
               c3 = 2 * b * 7 * 7 * 64 * (3 * 3 * 32), d1 = 2 * b * 576 * 128, d2 = 2 * b * 128 * 10;
  bench::StepFlops f = bench::count_step_flops(g, 8);
  EXPECT_DOUBLE_EQ(f.forward, c1 + c2 + c3 + d1 + d2);
  EXPECT_DOUBLE_EQ(f.backward, 2 * (c1 + c2 + c3 + d1 + d2) - c1);
}

TEST(FlopCountTest, LstmCountsInputAndStateProductsAndTheStateGradientEveryStep) {
  nn::Sequential model({nn::LSTM(128), nn::Dense(10)});
  Tensor x = random_uniform({2, 28, 28}, 0.f, 1.f, 1);
  model(x);
  graph::Graph g = graph::trace(model, x);
  const double b = 8, steps = 28, features = 28, units = 128;
  const double input = 2 * b * steps * features * 4 * units, state = 2 * b * steps * units * 4 * units;
  const double dense = 2 * b * units * 10;
  bench::StepFlops f = bench::count_step_flops(g, 8);
  EXPECT_DOUBLE_EQ(f.forward, input + state + dense);
  // The LSTM's weight gradients and its state gradient through time, not its input's (the
  // sequence is the graph's input); the Dense's kernel and data gradients.
  EXPECT_DOUBLE_EQ(f.backward, (input + state) + state + 2 * dense);
}

TEST(FlopCountTest, AttentionCountsScoresAndWeightedSumTwiceBackward) {
  nn::applications::VisionTransformerOptions o;
  o.depth = 1;
  auto model = nn::applications::vision_transformer(o);
  Tensor x = cast(random_uniform({2, 28, 28, 1}, 0.f, 255.f, 1), DType::u8);
  (*model)(x);
  graph::Graph g = graph::trace(*model, x);
  const double b = 4, tokens = 49, dim = 64, heads = 4, key_dim = 16;
  const double patches = 2 * b * tokens * dim * 16;  // 4x4x1 patches to 64
  const double projections = 4 * (2 * b * tokens * dim * dim);  // q, k, v and output
  const double attention = 2 * b * heads * tokens * tokens * (key_dim + key_dim);
  const double mlp = 2 * (2 * b * tokens * dim * 128), head = 2 * b * dim * 10;
  bench::StepFlops f = bench::count_step_flops(g, 4);
  EXPECT_DOUBLE_EQ(f.forward, patches + projections + attention + mlp + head);
  // Every product after the patch embedding passes gradients to both operands; the patch
  // embedding only to its kernel (its input is the image).
  EXPECT_DOUBLE_EQ(f.backward, patches + 2 * (projections + attention + mlp + head));
}

TEST(FlopCountTest, CharLmCountsItsProductsAndNotItsEmbeddingLookups) {
  auto model = nn::applications::char_transformer_lm({.vocab = 76, .context = 64, .blocks = 1});
  std::vector<Tensor> x{Tensor::zeros({2, 64}, DType::s32), nn::applications::lm_positions(2, 64)};
  graph::Graph g = graph::trace(*model, x);
  const double b = 4, t = 64, dim = 128, heads = 4, key_dim = 32, vocab = 76;
  const double projections = 4 * (2 * b * t * dim * dim);
  // The causal mask hides half the scores, but the whole square is computed and counted.
  const double attention = 2 * b * heads * t * t * (key_dim + key_dim);
  const double mlp = 2 * (2 * b * t * dim * 4 * dim), logits = 2 * b * t * dim * vocab;
  bench::StepFlops f = bench::count_step_flops(g, 4);
  EXPECT_DOUBLE_EQ(f.forward, projections + attention + mlp + logits);
  // The embeddings are variables, so every product passes gradients to both operands.
  EXPECT_DOUBLE_EQ(f.backward, 2 * (projections + attention + mlp + logits));
}

TEST(FlopCountTest, RejectsANonPositiveBatch) {
  auto model = nn::applications::fashion_mnist_mlp();
  Tensor x = cast(random_uniform({1, 28, 28, 1}, 0.f, 255.f, 1), DType::u8);
  (*model)(x);
  graph::Graph g = graph::trace(*model, x);
  EXPECT_THROW(bench::count_step_flops(g, 0), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
