#include "tests/tensor_compare.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "tensor/ops/ops.h"

namespace kiln::testing {

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape()) << a.describe() << " vs " << b.describe();
  if (a.shape() != b.shape()) return std::numeric_limits<float>::infinity();
  std::vector<float> x = cast(a, DType::f32).to_vector(), y = cast(b, DType::f32).to_vector();
  float m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) != std::isnan(y[i])) return std::numeric_limits<float>::infinity();
    if (!std::isnan(x[i])) m = std::max(m, std::fabs(x[i] - y[i]));
  }
  return m;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor x = a.clone_detached(), y = b.clone_detached();
  return std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

}  // namespace kiln::testing
