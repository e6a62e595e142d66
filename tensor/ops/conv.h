#pragma once
#include <array>
#include <string>

#include "tensor/ops/matmul.h"
#include "tensor/tensor.h"

namespace kiln {

// valid and same: Keras's (TensorFlow's) padding. explicit_pads: each side's padding given,
// as PyTorch's padding=(...) and ONNX's pads are.
enum class Padding { valid, same, explicit_pads };
// "valid" or "same", Keras's two; layers take only these.
Padding padding_from_name(const std::string& name);
// "valid", "same" or "explicit": what ops record (explicit with a "pads" attribute).
Padding op_padding_from_name(const std::string& name);
const char* padding_name(Padding padding);

// Explicit padding of the two spatial dimensions in ONNX's order: {top, left, bottom, right}.
// Non-negative; zeros are what the padded cells hold (avg pooling leaves them out of its
// count, as Keras and ONNX's count_include_pad=0 do).
using Pads2d = std::array<int64_t, 4>;

struct Conv2dAttrs {
  std::array<int64_t, 2> strides{1, 1};
  Padding padding = Padding::valid;
  Pads2d pads{0, 0, 0, 0};  // read only with Padding::explicit_pads
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
  FusedActivation activation = FusedActivation::none;
};

// x: NHWC [N, H, W, C]; w: HWIO [KH, KW, C / groups, O] (Keras layout); bias: [O] or undefined.
// Returns NHWC [N, OH, OW, O] in x's dtype. w may be f32 when x is bf16 (mixed precision): the
// weights are converted while being reordered for oneDNN, and their gradient comes back in f32.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dAttrs& options = {});

// Depthwise convolution with Keras's DepthwiseConv2D kernel layout: w [KH, KW, C,
// depth_multiplier], bias [C * depth_multiplier] or undefined; output channel c * dm + m reads
// input channel c. Not an op kind of its own: it runs (and records, traces and exports) as
// conv2d with groups = C over the same buffer seen as [KH, KW, 1, C * dm], which is that
// conv's HWIO kernel. With depth_multiplier 1 oneDNN runs it, forward and both backward
// passes, on its depthwise kernels (brdgmm_dw / jit_dw; tests/conv_test checks the names);
// with larger multipliers on its grouped kernels. attrs.groups must be 1 or C.
Tensor depthwise_conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Conv2dAttrs attrs = {});

// How f32 3x3 stride-1 convolutions (groups 1) run, forward and backward; process-wide, like
// torch.backends.cudnn.benchmark.
//   direct (default): oneDNN's direct kernels on NHWC, whose results PyTorch's CPU
//     convolutions share.
//   winograd: oneDNN's Winograd F(4x4, 3x3) kernels wherever oneDNN implements the
//     convolution (AVX-512 CPUs, channels in multiples of 16), direct elsewhere. They do about
//     a third of the multiplications, at the cost of reordering activations into their blocked
//     layout and back, and their results differ from direct ones by rounding (about 1e-6 of
//     the largest value on unit-scale data, against direct; tests/conv_test measures it).
//   fastest: each pass (forward, input gradient, kernel gradient) of each geometry times both
//     on its first call (best of three each) and keeps Winograd for the rest of the process
//     if it was at least 5% faster, direct otherwise. On the
//     Xeon of 2026-12-01, Winograd won ResNet-18's 64- to 512-channel convolutions and lost the
//     Keras CNN's 16- and 32-channel ones.
enum class ConvAlgorithm { direct, winograd, fastest };
void set_conv_algorithm(ConvAlgorithm algorithm);
ConvAlgorithm conv_algorithm();
ConvAlgorithm conv_algorithm_from_name(const std::string& name);  // "direct", "winograd" or "fastest"

// The kernel in the blocked layout oneDNN's forward convolution picks for NHWC inputs of
// `input_shape` computed in `compute_dtype` (the f32 master keeps the same blocking), so that
// training reads it with no reorder each step (kiln::optimize). conv2d and its gradient accept
// the packed kernel as they do an HWIO one; the gradient comes back in the same layout.
// Returns w itself when oneDNN runs on HWIO as it is.
Tensor pack_conv2d_kernel(const Tensor& w, const Shape& input_shape, const Conv2dAttrs& attrs, DType compute_dtype);

// The largest input size, kernel size, stride, dilation or dilated kernel span a convolution or
// pooling accepts: oneDNN's kernels index spatial positions in 32 bits.
constexpr int64_t kMaxSpatialExtent = 2147483647;

// The attributes conv2d records (its registered op kind is "conv2d"); ops::parse_attrs reads
// them back (tensor/ops/op_attrs.h).
inline ops::Attrs to_attrs(const Conv2dAttrs& o) {
  ops::Attrs a("conv2d");
  a.set("strides", std::vector<int64_t>{o.strides[0], o.strides[1]});
  a.set("padding", padding_name(o.padding));
  if (o.padding == Padding::explicit_pads) a.set("pads", std::vector<int64_t>(o.pads.begin(), o.pads.end()));
  a.set("dilation", std::vector<int64_t>{o.dilation[0], o.dilation[1]});
  a.set("groups", ops::AttrValue(o.groups));
  a.set("activation", fused_activation_name(o.activation));
  return a;
}

// Padding arithmetic for one spatial dimension: Keras/TensorFlow's for valid and same, the
// given {before, after} for explicit_pads. Throws std::invalid_argument naming op and shapes
// for a non-positive kernel, stride or dilation, a negative pad, any of them (or the input
// size, the padded size or the dilated span) above kMaxSpatialExtent, or a window that does not
// fit the (padded) input.
struct SpatialPlan {
  int64_t out = 0, pad_before = 0, pad_after = 0;
};
SpatialPlan plan_spatial(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, Padding padding,
                         const char* op, const std::string& shapes_for_error,
                         std::array<int64_t, 2> explicit_pads = {0, 0});
// The {before, after} pads of spatial dimension `dim` (0: height, 1: width) in Pads2d.
inline std::array<int64_t, 2> pads_of_dim(const Pads2d& pads, int dim) { return {pads[dim], pads[dim + 2]}; }

}  // namespace kiln
