#include "nn/mask.h"

#include "tensor/ops/cast.h"
#include "tensor/ops/shape_ops.h"

namespace kiln::nn {

bool any_mask(const std::vector<Tensor>& masks) {
  for (const Tensor& m : masks) {
    if (m.defined()) return true;
  }
  return false;
}

Tensor mask_for_value(const Tensor& mask, DType dtype) {
  Shape s = mask.shape();
  s.push_back(1);
  return reshape(cast(mask, dtype), s);
}

}  // namespace kiln::nn
