#include "tensor/ops/index.h"

#include <cstring>
#include <stdexcept>

#include "tensor/ops/recorder.h"
#include "tensor/ops/common.h"

namespace kiln {

Tensor one_hot(const Tensor& labels, int64_t depth, DType dtype) {
  detail::check_defined(labels, "one_hot", "labels");
  if (is_floating(labels.dtype())) {
    throw std::invalid_argument("one_hot: labels must be integers (s32, u8, s8), got " + labels.describe());
  }
  if (depth <= 0) throw std::invalid_argument("one_hot: depth must be positive, got " + std::to_string(depth));
  Shape shape = labels.shape();
  shape.push_back(depth);
  Tensor out = Tensor::zeros(shape, DType::f32);
  float* o = out.data<float>();
  std::vector<int32_t> ids = labels.to_int32();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= depth) {
      throw std::out_of_range("one_hot: label " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                              " is outside [0, " + std::to_string(depth) + ") for labels " + labels.describe());
    }
    o[i * depth + ids[i]] = 1.f;
  }
  if (dtype != DType::f32) {
    Tensor converted = Tensor::empty(shape, dtype);
    converted.copy_from(out);
    out = converted;
  }
  ops::Attrs call("one_hot");
  call.set("depth", ops::AttrValue(depth)).set("dtype", dtype_name(dtype));
  autograd::observe(call, {labels}, {out});
  return out;
}

}  // namespace kiln
