#include <gtest/gtest.h>

#include <cmath>

#include "tensor/ops/ops.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using testing::expect_forward_matches;
using testing::expect_gradients_match;
using testing::rand_tensor;

struct ConvCase {
  const char* name;
  Shape x, w;
  ref::ConvParams p;
  bool bias;
  bool fuse_relu = false;
};

Conv2dAttrs options_of(const ConvCase& c) {
  Conv2dAttrs o;
  o.strides = c.p.strides;
  o.padding = c.p.same ? Padding::same : Padding::valid;
  o.dilation = c.p.dilation;
  o.groups = c.p.groups;
  o.activation = c.fuse_relu ? FusedActivation::relu : FusedActivation::none;
  return o;
}

const ConvCase kCases[] = {
    {"valid3x3", {2, 6, 7, 3}, {3, 3, 3, 4}, {}, true},
    {"same3x3", {2, 6, 7, 3}, {3, 3, 3, 4}, {{1, 1}, true}, true},
    {"stride2_same", {1, 7, 8, 2}, {3, 3, 2, 5}, {{2, 2}, true}, true},
    {"stride2_valid_nobias", {1, 7, 8, 2}, {3, 2, 2, 5}, {{2, 1}, false}, false},
    {"dilation2", {1, 8, 8, 2}, {3, 3, 2, 3}, {{1, 1}, true, {2, 2}}, true},
    {"groups2", {1, 5, 5, 4}, {3, 3, 2, 6}, {{1, 1}, true, {1, 1}, 2}, true},
    {"depthwise", {1, 5, 5, 3}, {3, 3, 1, 3}, {{1, 1}, true, {1, 1}, 3}, false},
    {"pointwise_relu", {2, 4, 4, 8}, {1, 1, 8, 16}, {}, true, true},
};

class ConvTest : public ::testing::TestWithParam<ConvCase> {};

ref::RefTensor conv_ref(const ConvCase& c, const std::vector<ref::RefTensor>& x) {
  auto y = ref::conv2d(x[0], x[1], c.bias ? &x[2] : nullptr, c.p);
  if (c.fuse_relu) y = ref::unary(y, [](double v) { return std::max(v, 0.0); });
  return y;
}

TEST_P(ConvTest, ForwardF32AndBf16) {
  const ConvCase& c = GetParam();
  auto f = [&](const std::vector<Tensor>& x) { return conv2d(x[0], x[1], c.bias ? x[2] : Tensor(), options_of(c)); };
  auto r = [&](const std::vector<ref::RefTensor>& x) { return conv_ref(c, x); };
  std::vector<Tensor> in{rand_tensor(c.x, 1), rand_tensor(c.w, 2)};
  if (c.bias) in.push_back(rand_tensor({c.w[3]}, 3));
  expect_forward_matches(f, r, in, testing::kF32);
  expect_forward_matches(f, r, in, {6e-2, 3e-2}, DType::bf16);
}

TEST_P(ConvTest, GradientsMatchFiniteDifferences) {
  const ConvCase& c = GetParam();
  auto f = [&](const std::vector<Tensor>& x) { return conv2d(x[0], x[1], c.bias ? x[2] : Tensor(), options_of(c)); };
  auto r = [&](const std::vector<ref::RefTensor>& x) { return conv_ref(c, x); };
  std::vector<Tensor> in{rand_tensor(c.x, 4), rand_tensor(c.w, 5)};
  if (c.bias) in.push_back(rand_tensor({c.w[3]}, 6));
  expect_gradients_match(f, r, in);
}

INSTANTIATE_TEST_SUITE_P(Ops, ConvTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Conv, ReorderedWeightsFollowInPlaceUpdates) {
  Tensor x = rand_tensor({1, 5, 5, 8}, 7), w = rand_tensor({3, 3, 8, 16}, 8);
  Tensor y1 = conv2d(x, w, Tensor());
  w.copy_from(w * 2.f);  // in place, as an optimizer does: bumps the storage version
  Tensor y2 = conv2d(x, w, Tensor());
  auto a = y1.to_vector(), b = y2.to_vector();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], 2 * a[i], 1e-4 + 1e-4 * std::fabs(a[i]));
}

TEST(Conv, BadInputNamesShapes) {
  try {
    conv2d(Tensor::zeros({1, 5, 5, 3}), Tensor::zeros({3, 3, 4, 8}), Tensor());
    FAIL();
  } catch (const std::invalid_argument& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("[1, 5, 5, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[3, 3, 4, 8]"), std::string::npos) << m;
  }
  EXPECT_THROW(conv2d(Tensor::zeros({5, 5, 3}), Tensor::zeros({3, 3, 3, 8}), Tensor()), std::invalid_argument);
  EXPECT_THROW(conv2d(Tensor::zeros({1, 2, 2, 3}), Tensor::zeros({3, 3, 3, 8}), Tensor()), std::invalid_argument);
  EXPECT_THROW(conv2d(Tensor::zeros({1, 5, 5, 3}), Tensor::zeros({3, 3, 3, 8}), Tensor::zeros({7})),
               std::invalid_argument);
  Conv2dAttrs bad_groups;
  bad_groups.groups = 2;
  EXPECT_THROW(conv2d(Tensor::zeros({1, 5, 5, 3}), Tensor::zeros({3, 3, 1, 8}), Tensor(), bad_groups),
               std::invalid_argument);
  EXPECT_THROW(padding_from_name("full"), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
