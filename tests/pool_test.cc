#include <gtest/gtest.h>

#include "tensor/ops/ops.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using testing::expect_forward_matches;
using testing::expect_gradients_match;
using testing::rand_tensor;

struct PoolCase {
  const char* name;
  Shape x;
  ref::PoolParams p;
};

const PoolCase kCases[] = {
    {"2x2", {2, 6, 6, 3}, {}},
    {"3x3s2_valid", {1, 7, 7, 4}, {{3, 3}, {2, 2}, false}},
    {"3x3s2_same", {1, 7, 8, 4}, {{3, 3}, {2, 2}, true}},
    {"2x2s1_same", {1, 5, 5, 2}, {{2, 2}, {1, 1}, true}},
};

Pool2dAttrs options_of(const PoolCase& c) {
  Pool2dAttrs o;
  o.pool_size = c.p.pool;
  o.strides = c.p.strides;
  o.padding = c.p.same ? Padding::same : Padding::valid;
  return o;
}

class PoolTest : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolTest, MaxAndAvgForwardAndGradients) {
  const PoolCase& c = GetParam();
  auto fmax = [&](const std::vector<Tensor>& x) { return max_pool2d(x[0], options_of(c)); };
  auto rmax = [&](const std::vector<ref::RefTensor>& x) { return ref::max_pool2d(x[0], c.p); };
  auto favg = [&](const std::vector<Tensor>& x) { return avg_pool2d(x[0], options_of(c)); };
  auto ravg = [&](const std::vector<ref::RefTensor>& x) { return ref::avg_pool2d(x[0], c.p); };
  Tensor x = rand_tensor(c.x, 21);
  expect_forward_matches(fmax, rmax, {x}, testing::kF32);
  expect_forward_matches(fmax, rmax, {x}, testing::kBf16, DType::bf16);
  expect_forward_matches(favg, ravg, {x}, testing::kF32);
  expect_forward_matches(favg, ravg, {x}, testing::kBf16, DType::bf16);
  expect_gradients_match(fmax, rmax, {x});
  expect_gradients_match(favg, ravg, {x});
}

INSTANTIATE_TEST_SUITE_P(Ops, PoolTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(GlobalAvgPool, ForwardAndGradient) {
  auto f = [](const std::vector<Tensor>& x) { return global_avg_pool2d(x[0]); };
  auto r = [](const std::vector<ref::RefTensor>& x) { return ref::reduce(x[0], {1, 2}, false, ref::Reduce::mean); };
  Tensor x = rand_tensor({2, 4, 5, 3}, 22);
  expect_forward_matches(f, r, {x}, testing::kF32);
  expect_forward_matches(f, r, {x}, testing::kBf16, DType::bf16);
  expect_gradients_match(f, r, {x});
}

TEST(Pool, BadInputNamesShapes) {
  Pool2dAttrs big;
  big.pool_size = {5, 5};
  try {
    max_pool2d(Tensor::zeros({1, 3, 3, 2}), big);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[1, 3, 3, 2]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(avg_pool2d(Tensor::zeros({3, 3, 2})), std::invalid_argument);
  EXPECT_THROW(global_avg_pool2d(Tensor::zeros({3, 2})), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
