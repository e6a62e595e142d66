// The inference plan's shortcuts for convolutions over small feature maps (runtime_export/plan/
// conv.cc): kernel taps that only ever read padding are cropped away, and a convolution whose
// one output position sees the whole input runs as a matmul. Both must give the eager
// convolution's results and appear in the plan where they apply.
#include <gtest/gtest.h>

#include "graph/trace.h"
#include "kiln.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using testing::max_abs_diff;

const Conv2DOptions kSame{.padding = "same", .bias_initializer = "random_uniform"};

std::string plan_of(const std::shared_ptr<Model>& model, const Shape& example, int64_t batch, float* diff) {
  Shape traced{batch};
  traced.insert(traced.end(), example.begin(), example.end());
  Tensor x = random_uniform(traced, -1.f, 1.f, 5);
  graph::Graph g = graph::trace(*model, x);
  runtime_export::InferenceModel plan(g);
  *diff = max_abs_diff(plan.run(x), model->predict(x));
  return plan.describe_plan({traced});
}

TEST(PlanConvShortcut, OneByOneInputRunsAsMatmul) {
  // ResNet's last stage at 32x32 images: 3x3 "same" convolutions on a 1x1 map, a residual sum
  // and a ReLU; and the stride-2 3x3 convolution from 2x2 to 1x1.
  SymbolicTensor in = Input({2, 2, 16});
  SymbolicTensor down = Conv2D(24, 3, "relu", {.strides = {2, 2}, .padding = "same", .bias_initializer = "random_uniform"})(in);
  SymbolicTensor h = Conv2D(24, 3, "", kSame)(down);
  h = ReLU()(Add()({h, down}));
  SymbolicTensor out = Conv2D(8, 3, "relu", kSame)(h);
  auto model = std::make_shared<Model>(in, out, "one_by_one");
  for (int64_t batch : {1, 5}) {
    float diff = 0;
    const std::string plan = plan_of(model, {2, 2, 16}, batch, &diff);
    EXPECT_LE(diff, 1e-5f) << plan;
    EXPECT_EQ(plan.find("conv2d"), std::string::npos) << plan;
    EXPECT_NE(plan.find("linear: 3"), std::string::npos) << plan;
  }
}

TEST(PlanConvShortcut, CroppedKernelsKeepTheirResults) {
  // One row: every kernel row but the middle reads padding, so the plan runs a 1x3 kernel;
  // a dilated kernel on a 2x2 map reads padding with its last tap; a 3x3 kernel on a 2x2 map
  // stays whole. None of them is a matmul.
  SymbolicTensor in = Input({1, 6, 8});
  SymbolicTensor h = Conv2D(8, 3, "relu", kSame)(in);
  h = Conv2D(8, {1, 3}, "", {.strides = {1, 3}, .padding = "valid"})(h);
  h = Conv2D(6, 3, "", {.padding = "same", .dilation_rate = {1, 2}, .bias_initializer = "random_uniform"})(h);
  auto model = std::make_shared<Model>(in, h, "cropped");
  for (int64_t batch : {1, 3}) {
    float diff = 0;
    const std::string plan = plan_of(model, {1, 6, 8}, batch, &diff);
    EXPECT_LE(diff, 1e-5f) << plan;
    EXPECT_NE(plan.find("conv2d: 3"), std::string::npos) << plan;
  }
  SymbolicTensor in2 = Input({2, 2, 8});
  SymbolicTensor h2 = Conv2D(8, 3, "", {.padding = "same", .dilation_rate = {2, 2}, .bias_initializer = "random_uniform"})(in2);
  h2 = Conv2D(4, 3, "relu", kSame)(h2);
  auto model2 = std::make_shared<Model>(in2, h2, "dilated");
  float diff = 0;
  const std::string plan = plan_of(model2, {2, 2, 8}, 4, &diff);
  EXPECT_LE(diff, 1e-5f) << plan;
  EXPECT_NE(plan.find("conv2d: 2"), std::string::npos) << plan;
}

}  // namespace
}  // namespace kiln
