#pragma once
// Plain-loop double references for transposed convolution and resize, written from Keras's
// JAX formulation (not from Kiln's geometry), used only by tests.
#include <array>
#include <string>
#include <vector>

#include "tests/reference.h"

namespace kiln::ref {

struct ConvTransposeParams {
  std::array<int64_t, 2> strides{1, 1};
  bool same = false;
  std::array<int64_t, 2> output_padding{-1, -1};  // -1: Keras's None
  std::array<int64_t, 2> dilation{1, 1};
};
// x NHWC, w [KH, KW, O, C] (Keras's Conv2DTranspose kernel), bias [O] or null. As Keras's JAX
// backend computes it: the input dilated by the strides, padded by Keras's (left, right)
// (keras/src/backend/common/backend_utils.py), correlated with the spatially flipped kernel.
RefTensor conv_transpose2d(const RefTensor& x, const RefTensor& w, const RefTensor* bias, const ConvTransposeParams& p);

// jax.image.resize(method='bilinear' or 'nearest', antialias=False) on NHWC, as jax computes
// it: bilinear through its weight matrix (triangle kernel at half-pixel sample points,
// normalized, zero outside [-0.5, in - 0.5]); nearest as floor((o + 0.5) * in / out).
RefTensor resize2d(const RefTensor& x, int64_t out_h, int64_t out_w, bool nearest);

// One case of tests/testdata/upsampling/keras_reference.txt.
struct KerasCase {
  std::string name;
  Shape shape;
  std::vector<double> values;
};
std::vector<KerasCase> read_keras_reference(const std::string& path);
// The inputs make_keras_reference.py builds from formulas.
std::vector<float> keras_reference_x(int64_t n);       // sin(0.1 i + 0.3)
std::vector<float> keras_reference_kernel(int64_t n);  // cos(0.37 i)
std::vector<float> keras_reference_bias(int64_t n);    // 0.1 i - 0.2

}  // namespace kiln::ref
