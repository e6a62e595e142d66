#pragma once
#include <array>

#include "tensor/ops/conv.h"
#include "tensor/tensor.h"

namespace kiln {

struct Pool2dAttrs {
  std::array<int64_t, 2> pool_size{2, 2};
  std::array<int64_t, 2> strides{0, 0};  // 0: equal to pool_size (Keras default)
  Padding padding = Padding::valid;
  Pads2d pads{0, 0, 0, 0};  // read only with Padding::explicit_pads; each below its pool size
};

// A pooling's output size, padding and strides over NHWC `x_shape`. Throws
// std::invalid_argument naming op and shapes where plan_spatial does, and for an explicit pad
// not below its pool size (a window of padding alone has no value; oneDNN refuses it too).
struct Pool2dPlan {
  SpatialPlan h, w;
  int64_t stride_h = 1, stride_w = 1;
};
Pool2dPlan plan_pool2d(const Shape& x_shape, const Pool2dAttrs& attrs, const char* op, const std::string& shapes);

// NHWC pooling (f32, bf16; u8 and s8 for quantized inference, without gradient). Average
// pooling with 'same' or explicit padding excludes padded cells (as Keras does, and ONNX's
// AveragePool with its default count_include_pad=0).
Tensor max_pool2d(const Tensor& x, const Pool2dAttrs& options = {});
Tensor avg_pool2d(const Tensor& x, const Pool2dAttrs& options = {});
// [N, H, W, C] -> [N, C] (or [N, 1, 1, C] with keepdims): one H x W pooling window (graphs,
// ONNX and the plan see that max_pool2d / avg_pool2d, then a reshape without keepdims).
Tensor global_avg_pool2d(const Tensor& x, bool keepdims = false);
Tensor global_max_pool2d(const Tensor& x, bool keepdims = false);

// The attributes max_pool2d and avg_pool2d record (ops::parse_attrs reads them back).
inline ops::Attrs to_attrs(const char* op, const Pool2dAttrs& o) {
  ops::Attrs a(op);
  a.set("pool_size", std::vector<int64_t>{o.pool_size[0], o.pool_size[1]});
  a.set("strides", std::vector<int64_t>{o.strides[0], o.strides[1]});
  a.set("padding", padding_name(o.padding));
  if (o.padding == Padding::explicit_pads) a.set("pads", std::vector<int64_t>(o.pads.begin(), o.pads.end()));
  return a;
}

}  // namespace kiln
