#include <gtest/gtest.h>

#include "tensor/ops/ops.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using testing::expect_forward_matches;
using testing::expect_gradients_match;
using testing::rand_tensor;

auto kMatmul = [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); };
auto kMatmulRef = [](const std::vector<ref::RefTensor>& x) { return ref::matmul(x[0], x[1]); };

TEST(Matmul, ForwardF32AndBf16WithBatchBroadcast) {
  for (auto shapes : std::vector<std::pair<Shape, Shape>>{
           {{5, 7}, {7, 3}}, {{2, 5, 7}, {2, 7, 3}}, {{2, 5, 7}, {7, 3}}, {{3, 1, 4, 6}, {2, 6, 5}}, {{64, 128}, {128, 33}}}) {
    std::vector<Tensor> in{rand_tensor(shapes.first, 1), rand_tensor(shapes.second, 2)};
    expect_forward_matches(kMatmul, kMatmulRef, in, testing::kF32);
    expect_forward_matches(kMatmul, kMatmulRef, in, {5e-2, 2e-2}, DType::bf16);
  }
}

TEST(Matmul, TransposedViewsNeedNoCopy) {
  Tensor a = rand_tensor({7, 5}, 3), b = rand_tensor({3, 7}, 4);
  auto f = [](const std::vector<Tensor>& x) { return matmul(transpose(x[0]), transpose(x[1])); };
  auto r = [](const std::vector<ref::RefTensor>& x) {
    return ref::matmul(ref::permute(x[0], {1, 0}), ref::permute(x[1], {1, 0}));
  };
  expect_forward_matches(f, r, {a, b}, testing::kF32);
  expect_gradients_match(f, r, {a, b});
}

TEST(Matmul, Gradients) {
  expect_gradients_match(kMatmul, kMatmulRef, {rand_tensor({4, 6}, 5), rand_tensor({6, 3}, 6)});
  expect_gradients_match(kMatmul, kMatmulRef, {rand_tensor({2, 4, 6}, 7), rand_tensor({6, 3}, 8)});
  expect_gradients_match(kMatmul, kMatmulRef, {rand_tensor({2, 1, 3, 4}, 9), rand_tensor({3, 4, 2}, 10)});
}

TEST(Linear, BiasAndFusedReluForwardAndGradients) {
  for (bool relu_on : {false, true}) {
    auto f = [relu_on](const std::vector<Tensor>& x) {
      return linear(x[0], x[1], x[2], relu_on ? FusedActivation::relu : FusedActivation::none);
    };
    auto r = [relu_on](const std::vector<ref::RefTensor>& x) { return ref::linear(x[0], x[1], &x[2], relu_on); };
    std::vector<Tensor> in{rand_tensor({2, 3, 8}, 11), rand_tensor({8, 5}, 12), rand_tensor({5}, 13)};
    expect_forward_matches(f, r, in, testing::kF32);
    expect_forward_matches(f, r, in, {5e-2, 2e-2}, DType::bf16);
    expect_gradients_match(f, r, in);
  }
}

TEST(Linear, Bf16InputsWithF32Bias) {
  Tensor x = cast(rand_tensor({4, 8}, 14), DType::bf16), w = cast(rand_tensor({8, 3}, 15), DType::bf16);
  Tensor b = rand_tensor({3}, 16);
  Tensor y = linear(x, w, b);
  EXPECT_EQ(y.dtype(), DType::bf16);
  ref::RefTensor bias = ref::from(b);
  auto expected = ref::linear(ref::from(x), ref::from(w), &bias, false);
  auto got = y.to_vector();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected.data[i], 5e-2);
}

TEST(Matmul, Int8GivesExactInt32) {
  for (DType src : {DType::u8, DType::s8}) {
    Tensor a = cast(rand_tensor({5, 9}, 17, src == DType::u8 ? 0.f : -100.f, 100.f), src);
    Tensor b = cast(rand_tensor({9, 4}, 18, -100.f, 100.f), DType::s8);
    Tensor c = matmul(a, b);
    EXPECT_EQ(c.dtype(), DType::s32);
    auto expected = ref::matmul(ref::from(a), ref::from(b));
    auto got = c.to_vector();
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], expected.data[i]);
  }
  EXPECT_THROW(matmul(Tensor::zeros({2, 2}, DType::s8), Tensor::zeros({2, 2}, DType::u8)), std::invalid_argument);
}

TEST(Matmul, BadInputNamesShapes) {
  try {
    matmul(Tensor::zeros({2, 3}), Tensor::zeros({4, 5}));
    FAIL();
  } catch (const std::invalid_argument& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("[2, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 5]"), std::string::npos) << m;
  }
  // A vector is a row on the left (numpy's rule), but its length must still be the inner one;
  // a scalar is no operand.
  EXPECT_EQ(matmul(Tensor::zeros({3}), Tensor::zeros({3, 2})).shape(), (Shape{2}));
  EXPECT_THROW(matmul(Tensor::zeros({4}), Tensor::zeros({3, 2})), std::invalid_argument);
  EXPECT_THROW(matmul(Tensor::zeros({}), Tensor::zeros({3, 2})), std::invalid_argument);
  EXPECT_THROW(matmul(Tensor::zeros({2, 3, 4}), Tensor::zeros({3, 4, 5})), std::invalid_argument);
  EXPECT_THROW(matmul(Tensor::zeros({2, 3}), Tensor::zeros({3, 2}, DType::bf16)), std::invalid_argument);
  EXPECT_THROW(linear(Tensor::zeros({2, 3}), Tensor::zeros({4, 5}), Tensor()), std::invalid_argument);
  EXPECT_THROW(linear(Tensor::zeros({2, 4}), Tensor::zeros({4, 5}), Tensor::zeros({4})), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
