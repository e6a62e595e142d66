#include "tests/blobs.h"

#include <vector>

#include "tensor/random.h"

namespace kiln::testing {

data::Dataset blobs(int64_t n, uint64_t seed) {
  RandomStream rs(seed);
  std::vector<float> x;
  std::vector<int32_t> y;
  const float centers[3][2] = {{0, 3}, {3, -2}, {-3, -2}};
  for (int64_t i = 0; i < n; ++i) {
    int c = static_cast<int>(i % 3);
    x.push_back(centers[c][0] + static_cast<float>(rs.normal()));
    x.push_back(centers[c][1] + static_cast<float>(rs.normal()));
    y.push_back(c);
  }
  return data::Dataset::from_tensor_slices(Tensor::from_vector(x, {n, 2}), Tensor::from_int32(y, {n}));
}

}  // namespace kiln::testing
