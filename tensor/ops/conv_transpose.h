#pragma once
// Transposed convolution (Keras Conv2DTranspose, ONNX ConvTranspose) on oneDNN's
// deconvolution: the gradient of a convolution with respect to its input, run forward.
#include <array>
#include <string>

#include "tensor/ops/attrs.h"
#include "tensor/ops/conv.h"
#include "tensor/tensor.h"

namespace kiln {

struct ConvTranspose2dAttrs {
  std::array<int64_t, 2> strides{1, 1};
  Padding padding = Padding::valid;
  // Extra rows/columns at the bottom/right, each below its stride (Keras checks the same);
  // -1: none, Keras's output_padding=None, which lets the padding decide the output size.
  std::array<int64_t, 2> output_padding{-1, -1};
  std::array<int64_t, 2> dilation{1, 1};
};

// x: NHWC [N, H, W, C]; w: [KH, KW, O, C], as Keras stores a Conv2DTranspose kernel (the HWIO
// kernel of the convolution this one transposes); bias: [O] or undefined. Returns NHWC
// [N, OH, OW, O] in x's dtype with Keras's output size (conv_transpose_spatial). f32 and bf16;
// x, w and bias share a dtype (a layer casts its f32 master kernel under bf16 compute).
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvTranspose2dAttrs& attrs = {});

// One spatial dimension of a transposed convolution as Keras computes it
// (keras/src/backend/common/backend_utils.py: the JAX padding and
// compute_conv_transpose_output_shape): the full result of length (in - 1) * stride + span is
// cropped by crop_begin at the start and crop_end at the end; a negative crop_end appends
// that many positions that no input reaches (they hold the bias). Throws
// std::invalid_argument naming `op` and `shapes` for non-positive kernel, stride or dilation,
// an output_padding not below the stride, or a size past kMaxSpatialExtent.
struct ConvTransposeSpatial {
  int64_t out = 0, crop_begin = 0, crop_end = 0;
};
ConvTransposeSpatial conv_transpose_spatial(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                                            Padding padding, int64_t output_padding, const char* op,
                                            const std::string& shapes);

// The output shape of conv_transpose2d (checks the ranks and the channels against the kernel).
Shape conv_transpose2d_output_shape(const Shape& x_nhwc, const Shape& w, const ConvTranspose2dAttrs& attrs,
                                    const char* op, const std::string& shapes);

// The attributes conv_transpose2d records (ops::parse_attrs reads them back).
inline ops::Attrs to_attrs(const ConvTranspose2dAttrs& o) {
  ops::Attrs a("conv_transpose2d");
  a.set("strides", std::vector<int64_t>{o.strides[0], o.strides[1]});
  a.set("padding", o.padding == Padding::same ? "same" : "valid");
  a.set("output_padding", std::vector<int64_t>{o.output_padding[0], o.output_padding[1]});
  a.set("dilation", std::vector<int64_t>{o.dilation[0], o.dilation[1]});
  return a;
}

}  // namespace kiln
