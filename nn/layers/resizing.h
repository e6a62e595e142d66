#pragma once
#include <array>
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

// keras.layers.UpSampling2D on NHWC input: H and W times size[0] and size[1]. "nearest"
// repeats rows and columns (as Keras does); "bilinear" is Keras's ops.image.resize to the
// larger size. Keras's "bicubic", "lanczos3" and "lanczos5" are refused by name.
Layer UpSampling2D(std::array<int64_t, 2> size = {2, 2}, const std::string& interpolation = "nearest",
                   const std::string& name = "");

struct ResizingOptions {
  std::string interpolation = "bilinear";  // or "nearest"
  // Keras's other arguments, accepted at their defaults only (anything else is refused by name):
  // crop_to_aspect_ratio, pad_to_aspect_ratio and antialias false, fill_mode "constant".
  bool crop_to_aspect_ratio = false;
  bool pad_to_aspect_ratio = false;
  std::string fill_mode = "constant";
  float fill_value = 0.f;
  bool antialias = false;
};

// keras.layers.Resizing on NHWC input: every image to height x width with Keras's resize
// (jax.image.resize semantics without antialiasing, tensor/ops/resize.h).
Layer Resizing(int64_t height, int64_t width, const ResizingOptions& options = {}, const std::string& name = "");

}  // namespace kiln::nn
