// The checkers themselves must be able to fail: a wrong gradient or a wrong forward is caught.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "tensor/ops/ops.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

template <typename F>
int count_failures(F&& f) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    f();
  }
  return results.size();
}

TEST(GradCheck, CatchesAWrongGradient) {
  // x * stop_gradient(x) has the value of x^2 but half its true gradient.
  auto wrong = [](const std::vector<Tensor>& x) { return x[0] * stop_gradient(x[0]); };
  auto r = [](const std::vector<ref::RefTensor>& x) { return ref::unary(x[0], [](double v) { return v * v; }); };
  EXPECT_GT(count_failures([&] { testing::expect_gradients_match(wrong, r, {testing::rand_tensor({4}, 1, 0.5f, 1.f)}); }), 0);
  auto right = [](const std::vector<Tensor>& x) { return x[0] * x[0]; };
  EXPECT_EQ(count_failures([&] { testing::expect_gradients_match(right, r, {testing::rand_tensor({4}, 1, 0.5f, 1.f)}); }), 0);
}

TEST(GradCheck, CatchesAWrongForward) {
  auto f = [](const std::vector<Tensor>& x) { return x[0] * 1.001f; };
  auto r = [](const std::vector<ref::RefTensor>& x) { return x[0]; };
  EXPECT_GT(count_failures([&] { testing::expect_forward_matches(f, r, {testing::rand_tensor({4}, 2, 1.f, 2.f)}, testing::kF32); }), 0);
}

}  // namespace
}  // namespace kiln
