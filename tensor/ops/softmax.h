#pragma once
#include "tensor/tensor.h"

namespace kiln {

Tensor softmax(const Tensor& x, int axis = -1);
Tensor log_softmax(const Tensor& x, int axis = -1);

}  // namespace kiln
