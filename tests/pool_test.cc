#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "autograd/gradient_tape.h"
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
    // PyTorch padding / ONNX pads {top, left, bottom, right}; uneven, and past what 'same' pads.
    {"3x3s2_explicit", {1, 7, 8, 4}, {{3, 3}, {2, 2}, false, true, {2, 0, 1, 2}}},
    {"2x3s1_explicit", {2, 5, 4, 3}, {{2, 3}, {1, 1}, false, true, {1, 2, 0, 1}}},
};

Pool2dAttrs options_of(const PoolCase& c) {
  Pool2dAttrs o;
  o.pool_size = c.p.pool;
  o.strides = c.p.strides;
  o.padding = c.p.explicit_pads ? Padding::explicit_pads : c.p.same ? Padding::same : Padding::valid;
  o.pads = c.p.pads;
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

// PyTorch's CPU max pooling written out: a cell is taken when it is greater than the running
// maximum or is NaN, so ties go to the first cell and a NaN window to its last NaN; the
// gradient goes to the taken cell and adds up where windows overlap.
struct PoolByHand {
  std::vector<float> y, dx;
};
PoolByHand max_pool_by_hand(const std::vector<float>& x, const Shape& s, const std::vector<float>& dy, int64_t k,
                            int64_t stride, Padding padding) {
  const int64_t n = s[0], h = s[1], w = s[2], c = s[3];
  SpatialPlan ph = plan_spatial(h, k, stride, 1, padding, "test", "");
  SpatialPlan pw = plan_spatial(w, k, stride, 1, padding, "test", "");
  PoolByHand out{{}, std::vector<float>(x.size(), 0.f)};
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oy = 0; oy < ph.out; ++oy)
      for (int64_t ox = 0; ox < pw.out; ++ox)
        for (int64_t ch = 0; ch < c; ++ch) {
          float m = -std::numeric_limits<float>::infinity();
          int64_t at = -1;
          for (int64_t i = oy * stride - ph.pad_before; i < oy * stride - ph.pad_before + k; ++i)
            for (int64_t j = ox * stride - pw.pad_before; j < ox * stride - pw.pad_before + k; ++j) {
              if (i < 0 || j < 0 || i >= h || j >= w) continue;
              int64_t idx = ((b * h + i) * w + j) * c + ch;
              if (at < 0 || x[idx] > m || std::isnan(x[idx])) m = x[idx], at = idx;
            }
          out.dx[at] += dy[out.y.size()];
          out.y.push_back(m);
        }
  return out;
}

// Values from {-2, -1, 0, 1, 2} (many ties), a few NaN and -inf, all-(-inf) windows.
Tensor tie_heavy(const Shape& s, uint64_t seed) {
  std::vector<float> v = (rand_tensor(s, seed, -2.5f, 2.5f)).to_vector();
  for (float& e : v) e = std::round(e);
  const float inf = std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < v.size(); i += 97) v[i] = std::nanf("");
  for (size_t i = 13; i < v.size(); i += 41) v[i] = -inf;
  const int64_t c = s[3], w = s[2];
  for (int64_t i : {int64_t{0}, int64_t{1}, w, w + 1}) v[i * c + (c - 1)] = -inf;  // a -inf window in the last channel
  return Tensor::from_vector(v, s);
}

void expect_same(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int shown = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    bool same = std::isnan(want[i]) ? std::isnan(got[i]) : got[i] == want[i];
    if (!same && shown++ < 5) ADD_FAILURE() << what << " at " << i << ": " << got[i] << ", want " << want[i];
  }
}

TEST(MaxPool, TiesNaNAndInfinityFollowPyTorchForwardAndBackward) {
  struct Case {
    Shape s;
    int64_t k, stride;
    Padding padding;
  };
  // Tiled, remainder rows and columns, gaps between windows, overlapping and padded windows;
  // 1, 16 and 37 channels; the larger shapes run on several threads.
  const Case cases[] = {
      {{2, 6, 6, 1}, 2, 2, Padding::valid},   {{4, 28, 28, 16}, 2, 2, Padding::valid},
      {{3, 7, 9, 37}, 2, 2, Padding::valid},  {{2, 11, 10, 16}, 2, 3, Padding::valid},
      {{2, 7, 8, 5}, 3, 2, Padding::same},    {{8, 14, 14, 16}, 3, 1, Padding::same},
      {{2, 9, 9, 37}, 2, 2, Padding::same},   {{5, 15, 13, 32}, 3, 2, Padding::valid},
  };
  for (const Case& c : cases) {
    for (DType dt : {DType::f32, DType::bf16}) {
      Tensor x = cast(tie_heavy(c.s, 31 + c.k), dt);
      Pool2dAttrs opt{.pool_size = {c.k, c.k}, .strides = {c.stride, c.stride}, .padding = c.padding};
      GradientTape tape;
      tape.watch(x);
      Tensor y = max_pool2d(x, opt);
      Tensor dy = cast(rand_tensor(y.shape(), 7, 0.5f, 1.5f), dt);
      Tensor dx = tape.gradient(y, std::vector<Tensor>{x}, dy)[0];
      PoolByHand want = max_pool_by_hand(x.to_vector(), c.s, dy.to_vector(), c.k, c.stride, c.padding);
      std::vector<float> want_dx = want.dx;
      if (dt == DType::bf16) want_dx = cast(Tensor::from_vector(want_dx, c.s), dt).to_vector();
      std::string what = shape_str(c.s) + " k" + std::to_string(c.k) + " s" + std::to_string(c.stride) + " " +
                         dtype_name(dt);
      EXPECT_EQ(y.dtype(), dt) << what;
      EXPECT_EQ(dx.dtype(), dt) << what;
      expect_same(y.to_vector(), want.y, "forward " + what);
      expect_same(dx.to_vector(), want_dx, "gradient " + what);
    }
  }
}

// Windows of more than 256 cells take oneDNN's kernel; values still follow PyTorch.
TEST(MaxPool, LargeWindowsMatchTheReference) {
  Tensor x = tie_heavy({2, 17, 17, 3}, 5);
  Pool2dAttrs opt{.pool_size = {17, 17}, .strides = {1, 1}, .padding = Padding::valid};
  PoolByHand want = max_pool_by_hand(x.to_vector(), x.shape(), std::vector<float>(6, 1.f), 17, 1, Padding::valid);
  expect_same(max_pool2d(x, opt).to_vector(), want.y, "17x17 window");
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
  Pool2dAttrs padded{.pool_size = {3, 3}, .strides = {1, 1}, .padding = Padding::explicit_pads, .pads = {0, 3, 0, 0}};
  try {
    max_pool2d(Tensor::zeros({1, 4, 4, 2}), padded);  // a window of padding alone
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("padding 3 is not below pool size 3"), std::string::npos) << e.what();
  }
  padded.pads = {1, 1, -1, 0};
  EXPECT_THROW(avg_pool2d(Tensor::zeros({1, 4, 4, 2}), padded), std::invalid_argument);
  EXPECT_THROW(global_avg_pool2d(Tensor::zeros({3, 2})), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
