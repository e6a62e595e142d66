#include <gtest/gtest.h>

#include "autograd/gradient_tape.h"
#include "tensor/ops/ops.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using testing::expect_forward_matches;
using testing::expect_gradients_match;
using testing::rand_tensor;

TEST(ShapeOps, ViewsShareStorage) {
  Tensor x = rand_tensor({2, 3, 4}, 71);
  EXPECT_EQ(reshape(x, {6, 4}).storage(), x.storage());
  EXPECT_EQ(permute(x, {2, 0, 1}).storage(), x.storage());
  EXPECT_EQ(slice(x, 2, 1, 3).storage(), x.storage());
  EXPECT_FALSE(transpose(x).is_contiguous());
  EXPECT_EQ(reshape(x, {-1, 2}).shape(), (Shape{12, 2}));
  EXPECT_EQ(flatten(x).shape(), (Shape{2, 12}));
  EXPECT_EQ(expand_dims(x, 1).shape(), (Shape{2, 1, 3, 4}));
  EXPECT_EQ(squeeze(expand_dims(x, -1), -1).shape(), x.shape());
}

TEST(ShapeOps, PermuteSliceReshapeOfViewsMatchReference) {
  Tensor x = rand_tensor({3, 4, 5}, 72);
  auto f = [](const std::vector<Tensor>& x) { return reshape(slice(permute(x[0], {2, 0, 1}), 1, 0, 3, 2), {5, -1}); };
  auto r = [](const std::vector<ref::RefTensor>& x) {
    auto y = ref::slice(ref::permute(x[0], {2, 0, 1}), 1, 0, 3, 2);
    y.shape = {5, y.size() / 5};
    return y;
  };
  expect_forward_matches(f, r, {x}, testing::kF32);
  expect_forward_matches(f, r, {x}, testing::kBf16, DType::bf16);
  expect_gradients_match(f, r, {x});
}

TEST(ShapeOps, LargeTransposeCopyAndBroadcast) {
  Tensor x = rand_tensor({130, 70}, 73);
  auto f = [](const std::vector<Tensor>& x) { return contiguous(transpose(x[0])); };
  auto r = [](const std::vector<ref::RefTensor>& x) { return ref::permute(x[0], {1, 0}); };
  expect_forward_matches(f, r, {x}, testing::kF32);
  auto fb = [](const std::vector<Tensor>& x) { return broadcast_to(x[0], {2, 3, 4}); };
  auto rb = [](const std::vector<ref::RefTensor>& x) {
    return ref::binary(x[0], ref::RefTensor{{2, 3, 4}, std::vector<double>(24, 0.0)}, [](double a, double) { return a; });
  };
  expect_forward_matches(fb, rb, {rand_tensor({3, 1}, 74)}, testing::kF32);
  expect_gradients_match(fb, rb, {rand_tensor({3, 1}, 74)});
}

TEST(ShapeOps, ConcatForwardAndGradients) {
  auto f = [](const std::vector<Tensor>& x) { return concat(x, 1); };
  auto r = [](const std::vector<ref::RefTensor>& x) { return ref::concat(x, 1); };
  std::vector<Tensor> in{rand_tensor({2, 3, 2}, 75), rand_tensor({2, 1, 2}, 76), rand_tensor({2, 4, 2}, 77)};
  expect_forward_matches(f, r, in, testing::kF32);
  expect_forward_matches(f, r, in, testing::kBf16, DType::bf16);
  expect_gradients_match(f, r, in);
}

TEST(ShapeOps, BadInputNamesShapes) {
  try {
    reshape(Tensor::zeros({2, 3}), {4, 2});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(reshape(Tensor::zeros({2, 3}), {-1, -1}), std::invalid_argument);
  EXPECT_THROW(permute(Tensor::zeros({2, 3}), {0, 0}), std::invalid_argument);
  EXPECT_THROW(permute(Tensor::zeros({2, 3}), {0}), std::invalid_argument);
  EXPECT_THROW(slice(Tensor::zeros({2, 3}), 1, 2, 1), std::out_of_range);
  EXPECT_THROW(slice(Tensor::zeros({2, 3}), 3, 0, 1), std::out_of_range);
  EXPECT_THROW(squeeze(Tensor::zeros({2, 3}), 0), std::invalid_argument);
  EXPECT_THROW(broadcast_to(Tensor::zeros({2, 3}), {3, 3}), std::invalid_argument);
  EXPECT_THROW(concat({Tensor::zeros({2, 3}), Tensor::zeros({3, 3})}, 1), std::invalid_argument);
  EXPECT_THROW(concat({}, 0), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
