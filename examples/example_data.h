#pragma once
// The Fashion-MNIST the examples train on (Debian's dataset-fashion-mnist), whole or small.
#include <cstdio>

#include "data/fashion_mnist.h"
#include "tensor/ops/shape_ops.h"

namespace kiln::examples {

// Under --smoke an example runs its whole path (train, trace, quantize, export, MPI launch)
// on the first images of each split, so CI runs every example in seconds
// (examples/examples_test.cc reads the same numbers to check what the example printed).
inline constexpr int64_t kSmokeTrainImages = 2048;
inline constexpr int64_t kSmokeTestImages = 512;

inline data::FashionMnist load_example_data(bool smoke) {
  data::FashionMnist fm = data::load_fashion_mnist();
  if (!smoke) return fm;
  std::printf("--smoke: the first %lld training and %lld test images\n", (long long)kSmokeTrainImages,
              (long long)kSmokeTestImages);
  return {slice(fm.x_train, 0, 0, kSmokeTrainImages), slice(fm.y_train, 0, 0, kSmokeTrainImages),
          slice(fm.x_test, 0, 0, kSmokeTestImages), slice(fm.y_test, 0, 0, kSmokeTestImages)};
}

}  // namespace kiln::examples
