#include <gtest/gtest.h>

#include <cmath>

#include "tensor/ops/ops.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using testing::expect_forward_matches;
using testing::expect_gradients_match;
using testing::rand_tensor;

struct BinaryCase {
  const char* name;
  Tensor (*op)(const Tensor&, const Tensor&);
  double (*ref)(double, double);
};

const BinaryCase kCases[] = {
    {"add", add, [](double a, double b) { return a + b; }},
    {"sub", sub, [](double a, double b) { return a - b; }},
    {"mul", mul, [](double a, double b) { return a * b; }},
    {"div", div, [](double a, double b) { return a / b; }},
    {"maximum", maximum, [](double a, double b) { return std::max(a, b); }},
    {"minimum", minimum, [](double a, double b) { return std::min(a, b); }},
};

class BinaryTest : public ::testing::TestWithParam<BinaryCase> {};

TEST_P(BinaryTest, ForwardWithBroadcastingF32AndBf16) {
  const BinaryCase& c = GetParam();
  auto f = [&](const std::vector<Tensor>& x) { return c.op(x[0], x[1]); };
  auto r = [&](const std::vector<ref::RefTensor>& x) { return ref::binary(x[0], x[1], c.ref); };
  // Positive second operand keeps div well-conditioned.
  for (auto shapes : std::vector<std::pair<Shape, Shape>>{
           {{3, 4}, {3, 4}}, {{2, 3, 4}, {4}}, {{3, 1}, {1, 4}}, {{1}, {2, 3}}, {{}, {5}}, {{2, 1, 3}, {4, 1}}}) {
    std::vector<Tensor> in{rand_tensor(shapes.first, 1), rand_tensor(shapes.second, 2, 0.5f, 2.f)};
    expect_forward_matches(f, r, in, testing::kF32);
    expect_forward_matches(f, r, in, testing::kBf16, DType::bf16);
  }
}

TEST_P(BinaryTest, GradientsMatchFiniteDifferences) {
  const BinaryCase& c = GetParam();
  auto f = [&](const std::vector<Tensor>& x) { return c.op(x[0], x[1]); };
  auto r = [&](const std::vector<ref::RefTensor>& x) { return ref::binary(x[0], x[1], c.ref); };
  expect_gradients_match(f, r, {rand_tensor({3, 4}, 3), rand_tensor({3, 4}, 4, 0.5f, 2.f)});
  expect_gradients_match(f, r, {rand_tensor({2, 3, 4}, 5), rand_tensor({3, 1}, 6, 0.5f, 2.f)});
  expect_gradients_match(f, r, {rand_tensor({1, 4}, 7), rand_tensor({3, 1}, 8, 0.5f, 2.f)});
}

INSTANTIATE_TEST_SUITE_P(Ops, BinaryTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Binary, AddReluForwardAndGradients) {
  auto f = [](const std::vector<Tensor>& x) { return add_relu(x[0], x[1]); };
  auto r = [](const std::vector<ref::RefTensor>& x) {
    return ref::binary(x[0], x[1], [](double a, double b) { return std::max(a + b, 0.0); });
  };
  std::vector<Tensor> in{rand_tensor({3, 4}, 9), rand_tensor({3, 4}, 10)};
  expect_forward_matches(f, r, in, testing::kF32);
  expect_forward_matches(f, r, in, testing::kBf16, DType::bf16);
  expect_gradients_match(f, r, in);
  expect_gradients_match(f, r, {rand_tensor({2, 3}, 11), rand_tensor({3}, 12)});
}

TEST(Binary, ScalarOperatorsAndComparisons) {
  Tensor x = Tensor::from_vector({1, 2, 3}, {3});
  EXPECT_EQ((x * 2.f + 1.f).to_vector(), (std::vector<float>{3, 5, 7}));
  EXPECT_EQ((1.f - x).to_vector(), (std::vector<float>{0, -1, -2}));
  EXPECT_EQ((-x).to_vector(), (std::vector<float>{-1, -2, -3}));
  EXPECT_EQ((x / 2.f).to_vector(), (std::vector<float>{0.5f, 1.f, 1.5f}));
  auto inv = (6.f / x).to_vector();
  EXPECT_NEAR(inv[2], 2.f, 1e-6);
  Tensor y = Tensor::from_vector({2, 2, 2}, {3});
  EXPECT_EQ(greater(x, y).to_vector(), (std::vector<float>{0, 0, 1}));
  EXPECT_EQ(equal(x, y).to_vector(), (std::vector<float>{0, 1, 0}));
  EXPECT_EQ(less(x, y).to_vector(), (std::vector<float>{1, 0, 0}));
  EXPECT_EQ(greater_equal(x, y).to_vector(), (std::vector<float>{0, 1, 1}));
}

TEST(Binary, BadInputNamesShapesAndDtypes) {
  try {
    add(Tensor::zeros({2, 3}), Tensor::zeros({4}));
    FAIL();
  } catch (const std::invalid_argument& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("[2, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[4]"), std::string::npos) << m;
  }
  try {
    mul(Tensor::zeros({2}), Tensor::zeros({2}, DType::bf16));
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.what();
  }
  EXPECT_THROW(add(Tensor::zeros({2}, DType::s32), Tensor::zeros({2}, DType::s32)), std::invalid_argument);
  EXPECT_THROW(add(Tensor(), Tensor::zeros({2})), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
