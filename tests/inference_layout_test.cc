// The inference plan's layout handling: a permute is a strided view of its input that its
// reader reorders with oneDNN (the NCHW input of an imported ONNX file), never an eager copy.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "graph/trace.h"
#include "runtime_export/inference_model.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using testing::max_abs_diff;

void expect_plan_matches_eager(const graph::TensorFunction& fn, const Tensor& x, const std::string& what) {
  graph::Graph g = graph::trace(fn, {x});
  runtime_export::InferenceModel model(g);
  const std::string plan = model.describe_plan({x.shape()});
  EXPECT_EQ(model.fallback_steps({x.shape()}), 0) << what << ": " << plan;
  EXPECT_EQ(plan.find("permute"), std::string::npos) << what << ": " << plan;
  Tensor want = g.run(std::vector<Tensor>{x})[0];
  EXPECT_LE(max_abs_diff(model.run(x), want), 1e-5) << what << ": " << plan;
  // Another batch size (where the permute keeps the batch first): another plan, the same view.
  if (g.values[g.inputs[0]].shape[0] != graph::kBatch) return;
  Shape other = x.shape();
  other[0] += 2;
  Tensor x2 = random_uniform(other, -1.f, 1.f, 9);
  EXPECT_LE(max_abs_diff(model.run(x2), g.run(std::vector<Tensor>{x2})[0]), 1e-5) << what << " at batch " << other[0];
}

TEST(InferenceLayout, PermutesOfEveryRankAreViewsTheReaderReorders) {
  struct Case {
    Shape shape;
    std::vector<int> perm;
  };
  const std::vector<Case> cases = {{{2, 3, 5, 4}, {0, 2, 3, 1}}, {{2, 5, 4, 3}, {0, 3, 1, 2}}, {{2, 3, 5, 4}, {3, 2, 1, 0}},
                                   {{2, 3, 5}, {0, 2, 1}},        {{3, 5}, {1, 0}},               {{2, 1, 4, 1, 3}, {0, 4, 2, 1, 3}}};
  for (const Case& c : cases) {
    Tensor x = random_uniform(c.shape, -1.f, 1.f, 3);
    const std::vector<int> perm = c.perm;
    // A graph output straight from the view, and one through an element-wise primitive.
    expect_plan_matches_eager([perm](const std::vector<Tensor>& in) { return std::vector<Tensor>{permute(in[0], perm)}; }, x,
                              "permute " + shape_str(c.shape));
    expect_plan_matches_eager(
        [perm](const std::vector<Tensor>& in) { return std::vector<Tensor>{relu(permute(in[0], perm)) + 1.f}; }, x,
        "relu(permute) " + shape_str(c.shape));
  }
}

TEST(InferenceLayout, AnNchwInputFeedsTheFirstConvolutionThroughOneReorder) {
  Tensor w = random_uniform({3, 3, 3, 8}, -0.5f, 0.5f, 4), b = random_uniform({8}, -0.5f, 0.5f, 5);
  Conv2dAttrs a;
  a.strides = {2, 2};
  a.padding = Padding::same;
  auto fn = [&](const std::vector<Tensor>& in) {
    // [N, C, H, W] in, as torch.onnx.export writes it; the reshape reads the conv's output plainly.
    Tensor y = relu(conv2d(permute(in[0], {0, 2, 3, 1}), w, b, a));
    return std::vector<Tensor>{reshape(y, {y.shape()[0], -1})};
  };
  Tensor x = random_uniform({2, 3, 16, 16}, -1.f, 1.f, 6);
  expect_plan_matches_eager(fn, x, "NCHW conv");
}

}  // namespace
}  // namespace kiln
