#pragma once
// What shape and dtype inference (OpDef::infer) reasons about: a tensor's dtype and shape,
// without data. Dimension 0 may be kSymbolicBatch, "whatever batch the inputs have"
// (graph::kBatch); every other dimension is a known size.
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/shape.h"

namespace kiln::ops {

constexpr int64_t kSymbolicBatch = -1;

struct ValueType {
  DType dtype = DType::f32;
  Shape shape;
  bool operator==(const ValueType& o) const { return dtype == o.dtype && shape == o.shape; }
  bool operator!=(const ValueType& o) const { return !(*this == o); }
};

// "f32[N, 28, 28, 1]": N for the symbolic batch, as Tensor::describe writes known shapes.
std::string describe(const ValueType& v);
// Throws std::invalid_argument naming `what` when the shape has a negative dimension other
// than a leading kSymbolicBatch, or when its byte count (the batch counted as 1) overflows.
void check_value_type(const ValueType& v, const std::string& what);

}  // namespace kiln::ops
