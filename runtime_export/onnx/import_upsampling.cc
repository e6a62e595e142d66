// ONNX ConvTranspose and Resize as Kiln's conv_transpose2d and resize2d.
#include <optional>

#include "runtime_export/onnx/importer.h"
#include "tensor/ops/conv_transpose.h"
#include "tensor/ops/resize.h"

namespace kiln::runtime_export::onnx_io {
namespace {

// Keras's output_padding for one dimension that crops (crop_begin, crop_end) with `padding`,
// -1 (None) preferred; nullopt when no Keras setting gives those crops.
std::optional<int64_t> keras_output_padding(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                                            Padding padding, int64_t crop_begin, int64_t crop_end) {
  const int64_t span = (kernel - 1) * dilation + 1;
  std::vector<int64_t> candidates{-1};
  if (padding == Padding::valid) {
    candidates.push_back(-crop_end);
  } else {
    const int64_t total = (span - 1 - crop_begin) + (span - 1 - crop_end);
    candidates.push_back(total - span - span % 2 + 2);
  }
  for (int64_t op : candidates) {
    if (op < -1 || op >= stride) continue;
    ConvTransposeSpatial p = conv_transpose_spatial(in, kernel, stride, dilation, padding, op, "ConvTranspose", "");
    if (p.crop_begin == crop_begin && p.crop_end == crop_end) return op;
  }
  return std::nullopt;
}

}  // namespace

void Importer::conv_transpose(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 2, 3);
  Ref x = ref(n.input(0)), w = ref(n.input(1));
  if (rank_of(x) != 4 || rank_of(w) != 4) {
    fail("ConvTranspose wants NCHW input and (C, O, KH, KW) weights, got " + shape_str(shape_of(x)) + ", " + shape_str(shape_of(w)));
  }
  if (a.get_string("auto_pad", "NOTSET") != "NOTSET") fail("attribute 'auto_pad' is not supported (Kiln writes explicit pads)");
  if (a.has("output_shape")) fail("attribute 'output_shape' is not supported (Kiln reads explicit pads and output_padding)");
  if (a.get_int("group", 1) != 1) fail("attribute 'group' other than 1 is not supported");
  // (C, O, KH, KW) -> [KH, KW, O, C] is the same axis permutation as OIHW -> HWIO.
  int xv = materialize(x, kToNhwc), wv = materialize(w, kOihwToHwio);
  const Shape xs = g_.values[xv].shape, ws = g_.values[wv].shape;
  if (ws[3] != xs[3]) fail("weights " + shape_str(ws) + " ([KH, KW, O, C]) do not match input channels of " + shape_str(xs));
  check_window(xs, {ws[0], ws[1]});
  std::vector<int64_t> kernel = a.get_ints("kernel_shape", {ws[0], ws[1]});
  if (kernel != std::vector<int64_t>{ws[0], ws[1]}) fail("kernel_shape " + ints_str(kernel) + " does not match weights " + shape_str(ws));
  auto strides = pair_attr(a, "strides", {1, 1}), dil = pair_attr(a, "dilations", {1, 1});
  std::vector<int64_t> pads = a.get_ints("pads", {0, 0, 0, 0});
  std::vector<int64_t> output_padding = a.get_ints("output_padding", {0, 0});
  a.done();
  if (pads.size() != 4) fail("attribute 'pads' " + ints_str(pads) + " should have 4 values");
  if (output_padding.size() != 2) fail("attribute 'output_padding' " + ints_str(output_padding) + " should have 2 values");
  for (int i = 0; i < 4; ++i) {
    if (pads[i] < 0 || pads[i] > kMaxWindow) fail("attribute 'pads' " + ints_str(pads) + " should hold values in [0, " + std::to_string(kMaxWindow) + "]");
  }
  for (int i = 0; i < 2; ++i) {
    if (output_padding[i] < 0 || output_padding[i] >= strides[i]) {
      fail("attribute 'output_padding' " + ints_str(output_padding) + " should hold values below the strides " + ints_str(strides));
    }
  }
  std::optional<ConvTranspose2dAttrs> found;
  for (Padding padding : {Padding::valid, Padding::same}) {
    ConvTranspose2dAttrs t;
    t.padding = padding;
    t.strides = {strides[0], strides[1]};
    t.dilation = {dil[0], dil[1]};
    bool ok = true;
    for (int i = 0; i < 2 && ok; ++i) {
      std::optional<int64_t> op = keras_output_padding(xs[1 + i], ws[i], strides[i], dil[i], padding, pads[i],
                                                       pads[2 + i] - output_padding[i]);
      if (op) t.output_padding[i] = *op;
      ok = op.has_value();
    }
    if (ok) {
      found = t;
      break;
    }
  }
  if (!found) {
    fail("attributes 'pads' " + ints_str(pads) + " and 'output_padding' " + ints_str(output_padding) +
         " match no Keras 'valid' or 'same' transposed convolution of input " + shape_str(xs));
  }
  std::vector<int> ins{xv, wv};
  if (n.input_size() == 3) {
    Ref b = ref(n.input(2));
    if (shape_of(b) != Shape{ws[2]}) fail("bias " + shape_str(shape_of(b)) + " does not match " + std::to_string(ws[2]) + " output channels");
    ins.push_back(materialize(b));
  }
  for (int i : ins) {
    if (g_.values[i].dtype != DType::f32) fail("ConvTranspose input '" + g_.values[i].name + "' is not FLOAT");
  }
  Shape out = conv_transpose2d_output_shape(xs, ws, *found, "ConvTranspose", shape_str(xs));
  define(n.output(0), add_node(to_attrs(*found), ins, nhwc_name(n.output(0)), out, DType::f32), kToNchw);
}

void Importer::resize(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 1, 4);
  Ref x = ref(n.input(0));
  if (rank_of(x) != 4) fail("Resize of rank " + std::to_string(rank_of(x)) + " (Kiln resizes NCHW images)");
  const std::string mode = a.get_string("mode", "nearest");
  const std::string ctm = a.get_string("coordinate_transformation_mode", "half_pixel");
  const std::string nearest_mode = a.get_string("nearest_mode", "round_prefer_floor");
  a.get_float("cubic_coeff_a", -0.75f);       // cubic only
  a.get_float("extrapolation_value", 0.f);    // tf_crop_and_resize only
  if (a.get_int("exclude_outside", 0) != 0) fail("attribute 'exclude_outside' other than 0 is not supported");
  if (a.get_int("antialias", 0) != 0) fail("attribute 'antialias' other than 0 is not supported (Keras resizes without)");
  if (a.has("axes")) fail("attribute 'axes' is not supported");
  if (a.get_string("keep_aspect_ratio_policy", "stretch") != "stretch") fail("attribute 'keep_aspect_ratio_policy' other than 'stretch' is not supported");
  a.done();
  if (mode != "nearest" && mode != "linear") fail("attribute 'mode' is '" + mode + "': Kiln resizes 'nearest' or 'linear'");
  int xv = materialize(x, kToNhwc);
  const Shape xs = g_.values[xv].shape;
  if (g_.values[xv].dtype != DType::f32) fail("Resize input is not FLOAT");
  if (xs[1] <= 0 || xs[2] <= 0 || xs[1] > kMaxSpatial || xs[2] > kMaxSpatial) fail("Resize input " + shape_str(xs) + " has an empty, symbolic or too large image");
  const bool has_scales = n.input_size() > 2 && !n.input(2).empty();
  const bool has_sizes = n.input_size() > 3 && !n.input(3).empty();
  if (has_scales == has_sizes) fail("Resize needs exactly one of 'scales' and 'sizes'");
  std::array<int64_t, 2> size{};
  if (has_scales) {
    auto it = inits_.find(n.input(2));
    if (it == inits_.end() || it->second->data_type() != onnx::TensorProto::FLOAT) fail("input 'scales' must be a FLOAT initializer");
    std::vector<float> s = init_tensor(n.input(2)).to_vector();
    if (s.size() != 4 || s[0] != 1.f || s[1] != 1.f) fail("input 'scales' must be [1, 1, h, w] (Kiln resizes H and W only)");
    for (int i = 0; i < 2; ++i) {
      // ONNX's output size: floor(in * scale), in float as ONNX Runtime computes it.
      const float v = static_cast<float>(xs[1 + i]) * s[2 + i];
      if (!(v >= 1.f) || !(v <= static_cast<float>(kMaxSpatial))) fail("input 'scales' gives an empty or too large output for " + shape_str(xs));
      size[i] = static_cast<int64_t>(std::floor(v));
    }
  } else {
    std::vector<int64_t> s = int64_input(n.input(3), "sizes");
    if (s.size() != 4 || s[1] != xs[3] || (xs[0] != kBatch && s[0] != xs[0])) {
      fail("input 'sizes' " + ints_str(s) + " must keep N and C of " + shape_str(xs) + " (Kiln resizes H and W only)");
    }
    for (int i = 0; i < 2; ++i) {
      if (s[2 + i] <= 0 || s[2 + i] > kMaxSpatial) fail("input 'sizes' " + ints_str(s) + " holds an empty or too large size");
      size[i] = s[2 + i];
    }
  }
  // Kiln's resize2d is jax.image.resize's (tensor/ops/resize.h). ONNX modes that compute the
  // same source positions are accepted; any other is refused rather than resized differently.
  const bool integer_upscale = size[0] % xs[1] == 0 && size[1] % xs[2] == 0;
  const bool half_pixel = ctm == "half_pixel" || (ctm == "pytorch_half_pixel" && size[0] > 1 && size[1] > 1);
  Interpolation interpolation;
  if (mode == "linear") {
    if (!half_pixel) fail("attribute 'coordinate_transformation_mode' is '" + ctm + "': linear Resize imports with 'half_pixel' only");
    interpolation = Interpolation::bilinear;
  } else {
    // half_pixel rounding half up is floor((o + 0.5) * in / out); without ties (an integer
    // upscale has none) rounding half down agrees, and so does asymmetric with floor.
    const bool same_positions = (half_pixel && nearest_mode == "round_prefer_ceil") ||
                                (integer_upscale && half_pixel && nearest_mode == "round_prefer_floor") ||
                                (integer_upscale && ctm == "asymmetric" && nearest_mode == "floor");
    if (!same_positions) {
      fail("attributes 'coordinate_transformation_mode' '" + ctm + "' and 'nearest_mode' '" + nearest_mode +
           "' pick other pixels than Kiln's nearest resize (half_pixel with round_prefer_ceil, or an integer upscale)");
    }
    interpolation = Interpolation::nearest;
  }
  Resize2dAttrs r;
  r.size = size;
  r.interpolation = interpolation;
  Shape out{xs[0], size[0], size[1], xs[3]};
  define(n.output(0), add_node(to_attrs(r), {xv}, nhwc_name(n.output(0)), out, DType::f32), kToNchw);
}

}  // namespace kiln::runtime_export::onnx_io
