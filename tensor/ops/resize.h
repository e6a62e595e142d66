#pragma once
// Image resizing (Keras UpSampling2D and Resizing, ONNX Resize) on oneDNN's resampling.
#include <array>
#include <string>

#include "tensor/ops/attrs.h"
#include "tensor/tensor.h"

namespace kiln {

enum class Interpolation { nearest, bilinear };
Interpolation interpolation_from_name(const std::string& name);  // "nearest" or "bilinear"
const char* interpolation_name(Interpolation interpolation);

struct Resize2dAttrs {
  std::array<int64_t, 2> size{1, 1};  // output height and width, each positive
  Interpolation interpolation = Interpolation::bilinear;
};

// NHWC [N, H, W, C] -> [N, size[0], size[1], C], f32 or bf16, with jax.image.resize's
// (and tf.image.resize's) semantics, which Keras's resize uses with antialias=False:
//   bilinear: half-pixel centers, the source position (o + 0.5) * in / out - 0.5 clamped to
//     the image, weights by distance; no antialiasing when downsampling (Keras's default);
//   nearest: source index floor((o + 0.5) * in / out), which for an integer upscale repeats
//     each pixel (Keras's UpSampling2D repeats).
// oneDNN's resampling follows the same convention (tests/resize_test checks it against a
// plain loop). The gradient is the adjoint (oneDNN's resampling backward).
Tensor resize2d(const Tensor& x, const Resize2dAttrs& attrs);
// resize2d to factors[0] * H by factors[1] * W (UpSampling2D); factors positive.
Tensor upsample2d(const Tensor& x, std::array<int64_t, 2> factors, Interpolation interpolation);

// The attributes resize2d records (ops::parse_attrs reads them back).
inline ops::Attrs to_attrs(const Resize2dAttrs& o) {
  ops::Attrs a("resize2d");
  a.set("size", std::vector<int64_t>{o.size[0], o.size[1]});
  a.set("interpolation", interpolation_name(o.interpolation));
  return a;
}

}  // namespace kiln
