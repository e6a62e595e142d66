#include <gtest/gtest.h>

#include <cmath>

#include "autograd/gradient_tape.h"
#include "tensor/ops/ops.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using testing::expect_forward_matches;
using testing::expect_gradients_match;
using testing::rand_tensor;

struct ReduceCase {
  const char* name;
  std::vector<int> axes;
  bool keepdims;
};

const ReduceCase kReduceCases[] = {
    {"all", {}, false}, {"axis0", {0}, false}, {"last_keep", {-1}, true}, {"axes02", {0, 2}, false}, {"mid_keep", {1}, true}};

class ReduceTest : public ::testing::TestWithParam<ReduceCase> {};

TEST_P(ReduceTest, SumMeanMaxForwardAndGradients) {
  const ReduceCase& c = GetParam();
  struct Kind {
    Tensor (*op)(const Tensor&, const std::vector<int>&, bool);
    ref::Reduce ref;
  };
  for (Kind k : {Kind{reduce_sum, ref::Reduce::sum}, Kind{reduce_mean, ref::Reduce::mean},
                 Kind{reduce_max, ref::Reduce::max}}) {
    auto f = [&](const std::vector<Tensor>& x) { return k.op(x[0], c.axes, c.keepdims); };
    auto r = [&](const std::vector<ref::RefTensor>& x) { return ref::reduce(x[0], c.axes, c.keepdims, k.ref); };
    Tensor x = rand_tensor({3, 4, 5}, 51);
    expect_forward_matches(f, r, {x}, testing::kF32);
    expect_forward_matches(f, r, {x}, {5e-2, 2e-2}, DType::bf16);
    expect_gradients_match(f, r, {x});
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, ReduceTest, ::testing::ValuesIn(kReduceCases),
                         [](const auto& info) { return std::string(info.param.name); });

// Kiln's own sum kernel takes every reduction over one contiguous run of axes, parallel over the
// kept rows where there are enough ([N, H, W, C] -> [N, 1, 1, C], a squeeze-excite gradient) and
// over chunks of the run otherwise ([N*H*W, C] -> [C], a bias gradient): large cases of both,
// in f32 and bf16, against the f64 reference.
TEST(Reduce, LargeSumsOverMiddleAndLeadingAxes) {
  struct Case {
    Shape shape;
    std::vector<int> axes;
  };
  for (const Case& c : {Case{{32, 8, 8, 144}, {1, 2}}, Case{{3, 40, 40, 24}, {1, 2}}, Case{{6400, 72}, {0}},
                        Case{{2, 70000}, {1}}}) {
    SCOPED_TRACE(shape_str(c.shape));
    for (bool mean : {false, true}) {
      auto f = [&](const std::vector<Tensor>& x) {
        return mean ? reduce_mean(x[0], c.axes, true) : reduce_sum(x[0], c.axes, true);
      };
      auto r = [&](const std::vector<ref::RefTensor>& x) {
        return ref::reduce(x[0], c.axes, true, mean ? ref::Reduce::mean : ref::Reduce::sum);
      };
      Tensor x = rand_tensor(c.shape, 52);
      expect_forward_matches(f, r, {x}, {1e-4, 1e-4});
      expect_forward_matches(f, r, {x}, {5e-2, 2e-2}, DType::bf16);
    }
  }
}

TEST(Reduce, MaxSplitsGradientBetweenTies) {
  Tensor x = Tensor::from_vector({1, 3, 3, 2}, {4});
  GradientTape tape;
  tape.watch(x);
  Tensor g = tape.gradient(reduce_max(x), x);
  EXPECT_EQ(g.to_vector(), (std::vector<float>{0, 0.5f, 0.5f, 0}));
}

TEST(Reduce, ArgmaxAndSumToShape) {
  Tensor x = Tensor::from_vector({1, 9, 3, 7, 2, 8}, {2, 3});
  EXPECT_EQ(argmax(x, 1).to_int32(), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(argmax(x, 0).to_int32(), (std::vector<int32_t>{1, 0, 1}));
  Tensor y = Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {2, 3, 2});
  EXPECT_EQ(argmax(y, 1).shape(), (Shape{2, 2}));
  EXPECT_EQ(argmax(y, 1).to_int32(), (std::vector<int32_t>{2, 2, 2, 2}));
  EXPECT_EQ(sum_to_shape(y, {3, 1}).to_vector(), (std::vector<float>{1 + 2 + 7 + 8, 3 + 4 + 9 + 10, 5 + 6 + 11 + 12}));
}

TEST(Reduce, BadAxisNamesShape) {
  try {
    reduce_sum(Tensor::zeros({2, 3}), {2});
    FAIL();
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(reduce_mean(Tensor::zeros({2, 3}), {-3}), std::out_of_range);
  EXPECT_THROW(argmax(Tensor::zeros({2, 3}), 5), std::out_of_range);
  EXPECT_THROW(sum_to_shape(Tensor::zeros({2, 3}), {4}), std::invalid_argument);
}

TEST(Softmax, ForwardAndGradientsAlongEachAxis) {
  for (int axis : {-1, 0, 1}) {
    for (bool log_variant : {false, true}) {
      auto f = [&](const std::vector<Tensor>& x) { return log_variant ? log_softmax(x[0], axis) : softmax(x[0], axis); };
      auto r = [&](const std::vector<ref::RefTensor>& x) { return ref::softmax(x[0], axis, log_variant); };
      Tensor x = rand_tensor({3, 4, 5}, 61, -3, 3);
      expect_forward_matches(f, r, {x}, testing::kF32);
      expect_forward_matches(f, r, {x}, testing::kBf16, DType::bf16);
      expect_gradients_match(f, r, {x});
    }
  }
}

TEST(Softmax, StableForLargeLogits) {
  Tensor x = Tensor::from_vector({1000.f, 1001.f, 999.f}, {1, 3});
  auto p = softmax(x).to_vector();
  EXPECT_NEAR(p[0] + p[1] + p[2], 1.0, 1e-6);
  auto lp = log_softmax(x).to_vector();
  EXPECT_TRUE(std::isfinite(lp[2]));
  EXPECT_THROW(softmax(Tensor::zeros({2, 3}), 2), std::out_of_range);
}

}  // namespace
}  // namespace kiln
