#pragma once
// The channel rounding every MobileNet shares (Keras's _depth in mobilenet_v3.py and
// _make_divisible in mobilenet_v2.py, both from TF-slim): the nearest multiple of `divisor`,
// at least `divisor`, and never more than 10% below v.
#include <algorithm>
#include <cstdint>

namespace kiln::nn::applications {

inline int64_t round_channels(double v, int64_t divisor = 8) {
  int64_t rounded = std::max<int64_t>(divisor, static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor);
  if (rounded < 0.9 * v) rounded += divisor;
  return rounded;
}

}  // namespace kiln::nn::applications
