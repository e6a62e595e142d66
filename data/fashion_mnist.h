#pragma once
#include <string>

#include "tensor/tensor.h"

namespace kiln::data {

struct FashionMnist {
  Tensor x_train;  // u8 [60000, 28, 28, 1] (NHWC)
  Tensor y_train;  // s32 [60000]
  Tensor x_test;   // u8 [10000, 28, 28, 1]
  Tensor y_test;   // s32 [10000]
};

// Where Debian's dataset-fashion-mnist puts the files, unless KILN_DATA_DIR says otherwise.
std::string default_fashion_mnist_dir();
FashionMnist load_fashion_mnist(const std::string& dir = "");

}  // namespace kiln::data
