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

// Inputs of shape [2, 3, 4] but for `axis`, where input i has i % 4 (so some are empty); every
// fifth is a permuted view (not contiguous).
std::vector<Tensor> concat_inputs(size_t count, DType dtype, int axis, uint64_t seed) {
  std::vector<Tensor> xs;
  for (size_t i = 0; i < count; ++i) {
    Shape s{2, 3, 4};
    s[axis] = static_cast<int64_t>(i % 4);
    const bool view = i % 5 == 4;
    Tensor t = rand_tensor(view ? Shape{s[2], s[1], s[0]} : s, seed + i, -100.f, 100.f);
    if (dtype != DType::f32) t = cast(t, dtype);
    xs.push_back(view ? permute(t, {2, 1, 0}) : t);
  }
  return xs;
}

TEST(ShapeOps, ConcatOfAnyCountMatchesAReferenceLoopForwardAndBackward) {
  // 15, 16 and 17 straddle the 16 primitive arguments oneDNN's concat used to be given.
  for (size_t count : {1u, 15u, 16u, 17u, 1000u}) {
    for (DType dtype : {DType::f32, DType::bf16, DType::s8, DType::u8}) {
      for (int axis : {0, 1, -1}) {
        SCOPED_TRACE(std::to_string(count) + " inputs, " + dtype_name(dtype) + ", axis " + std::to_string(axis));
        const int ref_axis = axis < 0 ? axis + 3 : axis;
        std::vector<Tensor> xs = concat_inputs(count, dtype, ref_axis, 100 * count);
        std::vector<ref::RefTensor> refs;
        for (const Tensor& x : xs) refs.push_back(ref::from(x));
        ref::RefTensor want = ref::concat(refs, ref_axis);

        const bool differentiable = is_floating(dtype);
        GradientTape tape;
        if (differentiable) {
          for (const Tensor& x : xs) tape.watch(x);
        }
        Tensor got = concat(xs, axis);
        EXPECT_EQ(got.dtype(), dtype);
        ASSERT_EQ(got.shape(), want.shape);
        std::vector<float> values = got.to_vector();
        ASSERT_EQ(values.size(), want.data.size());
        for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(values[i], want.data[i]) << "element " << i;
        if (!differentiable) continue;

        // Each input's gradient is its window of the upstream gradient.
        Tensor upstream = cast(rand_tensor(got.shape(), 9, -1.f, 1.f), dtype);
        std::vector<Tensor> grads = tape.gradient(got, xs, upstream);
        ASSERT_EQ(grads.size(), count);
        ref::RefTensor up = ref::from(upstream);
        int64_t start = 0;
        for (size_t i = 0; i < count; ++i) {
          const int64_t size = xs[i].shape()[ref_axis];
          ref::RefTensor window = ref::slice(up, ref_axis, start, start + size, 1);
          start += size;
          ASSERT_TRUE(grads[i].defined()) << "input " << i;
          EXPECT_EQ(grads[i].shape(), xs[i].shape()) << "input " << i;
          std::vector<float> g = grads[i].to_vector();
          ASSERT_EQ(g.size(), window.data.size());
          for (size_t j = 0; j < g.size(); ++j) ASSERT_EQ(g[j], window.data[j]) << "input " << i << " element " << j;
        }
      }
    }
  }
}

TEST(ShapeOps, ConcatOfLargeInputsSplitsTheCopyOverThreads) {
  // Past the parallel threshold, with pieces that straddle the threads' shares.
  std::vector<Tensor> xs{rand_tensor({300, 257}, 1), rand_tensor({300, 1}, 2), rand_tensor({300, 300}, 3)};
  std::vector<ref::RefTensor> refs;
  for (const Tensor& x : xs) refs.push_back(ref::from(x));
  ref::RefTensor want = ref::concat(refs, 1);
  std::vector<float> got = concat(xs, 1).to_vector();
  ASSERT_EQ(got.size(), want.data.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want.data[i]) << i;
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

// Issue 26: reshape's element count overflowed int64 for huge dims (resolve_shape), slice's
// extent for a huge step, and broadcast_to allocated from a shape nobody checked.
TEST(ShapeOps, HugeDimsAndStepsAreCheckedArithmetic) {
  Tensor x = Tensor::zeros({2, 3, 4});
  for (const Shape& s : {Shape{2, int64_t{1} << 62, int64_t{1} << 62}, Shape{INT64_MAX, 2}, Shape{-1, INT64_MAX, 4},
                         Shape{int64_t{1} << 40, int64_t{1} << 40, 0}}) {
    try {
      reshape(x, s);
      ADD_FAILURE() << "reshaped into " << shape_str(s);
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("[2, 3, 4]"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(reshape(Tensor::zeros({0, 3}), {5, 0}).shape(), (Shape{5, 0}));
  Tensor s = slice(Tensor::from_vector({1, 2, 3, 4}, {4}), 0, 1, 4, INT64_MAX);
  EXPECT_EQ(s.to_vector(), (std::vector<float>{2}));
  EXPECT_EQ(slice(Tensor::from_vector({1, 2, 3, 4}, {4}), 0, 0, INT64_MAX, INT64_MAX).to_vector(), (std::vector<float>{1}));
  EXPECT_THROW(broadcast_to(Tensor::zeros({1, 1}), {int64_t{1} << 62, int64_t{1} << 62}), std::invalid_argument);
  EXPECT_THROW(broadcast_to(Tensor::zeros({1, 1}), {-3, 2}), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
