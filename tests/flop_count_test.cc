// The training-step FLOP count of //benchmarks:compare against the counts worked out by hand.
#include "benchmarks/flop_count.h"

#include <gtest/gtest.h>

#include "graph/trace.h"
#include "nn/applications/applications.h"
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

TEST(FlopCountTest, RejectsANonPositiveBatch) {
  auto model = nn::applications::fashion_mnist_mlp();
  Tensor x = cast(random_uniform({1, 28, 28, 1}, 0.f, 255.f, 1), DType::u8);
  (*model)(x);
  graph::Graph g = graph::trace(*model, x);
  EXPECT_THROW(bench::count_step_flops(g, 0), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
