// Transposed convolution and resize as ONNX ConvTranspose and Resize.
#include <cmath>

#include "runtime_export/onnx/exporter.h"
#include "tensor/ops/conv_transpose.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/resize.h"

namespace kiln::runtime_export::onnx_io {

// ConvTranspose's output is (in - 1) * stride + span + output_padding - pads_begin - pads_end,
// output_padding appended at the end: Keras's crop at the start is pads_begin, its crop at the
// end pads_end where positive and output_padding where negative (always below the stride).
void Exporter::write_conv_transpose(const Node& n) {
  const ConvTranspose2dAttrs a = ops::parse_attrs_of<ops::OpKind::conv_transpose2d>(n.call);
  const int x = n.inputs[0], w = n.inputs[1], y = n.outputs[0];
  const Shape &xs = val(x).shape, &ws = val(w).shape;
  if (xs.size() != 4 || ws.size() != 4) fail("conv_transpose2d wants NHWC input and a 4-D kernel, got " + shape_str(xs) + ", " + shape_str(ws));
  if (xs[1] < 0 || xs[2] < 0) fail("conv_transpose2d input " + shape_str(xs) + " has a symbolic spatial size");
  const std::string shapes = shape_str(xs) + " * " + shape_str(ws);
  ConvTransposeSpatial ph = conv_transpose_spatial(xs[1], ws[0], a.strides[0], a.dilation[0], a.padding,
                                                   a.output_padding[0], "conv_transpose2d", shapes);
  ConvTransposeSpatial pw = conv_transpose_spatial(xs[2], ws[1], a.strides[1], a.dilation[1], a.padding,
                                                   a.output_padding[1], "conv_transpose2d", shapes);
  // Keras's [KH, KW, O, C] goes to ONNX's (C, O, KH, KW) by the permutation HWIO -> OIHW takes.
  std::string weights = const_[w] ? const_form(w, "oihw") : tmp(name_[w] + "_iohw");
  if (!const_[w]) set_attr(emit("Transpose", {native(w)}, {weights}), "perm", to_int64(kHwioToOihw));
  std::vector<std::string> ins{nchw(x), weights};
  if (n.inputs.size() > 2) ins.push_back(native(n.inputs[2]));
  auto* c = emit("ConvTranspose", ins, {out(y, true)});
  set_attr(c, "kernel_shape", std::vector<int64_t>{ws[0], ws[1]});
  set_attr(c, "strides", std::vector<int64_t>{a.strides[0], a.strides[1]});
  set_attr(c, "dilations", std::vector<int64_t>{a.dilation[0], a.dilation[1]});
  set_attr(c, "pads", std::vector<int64_t>{ph.crop_begin, pw.crop_begin, std::max<int64_t>(ph.crop_end, 0),
                                           std::max<int64_t>(pw.crop_end, 0)});
  set_attr(c, "output_padding", std::vector<int64_t>{std::max<int64_t>(-ph.crop_end, 0), std::max<int64_t>(-pw.crop_end, 0)});
  set_attr(c, "group", int64_t{1});
}

// The smallest float scale s with s >= out / in: ONNX sizes the output floor(in * s), which is
// then exactly `out`, and the half-pixel source positions differ from out / in's by a float
// rounding at most (none for the integer factors UpSampling2D uses). Scales rather than
// sizes: sizes would have to spell out the batch, which traced graphs leave symbolic.
static float scale_at_least(int64_t out, int64_t in) {
  const double exact = static_cast<double>(out) / static_cast<double>(in);
  float s = static_cast<float>(exact);
  while (static_cast<double>(s) < exact) s = std::nextafter(s, INFINITY);
  return s;
}

void Exporter::write_resize(const Node& n) {
  const Resize2dAttrs a = ops::parse_attrs_of<ops::OpKind::resize2d>(n.call);
  const int x = n.inputs[0], y = n.outputs[0];
  const Shape& xs = val(x).shape;
  if (xs.size() != 4 || xs[1] <= 0 || xs[2] <= 0) fail("resize2d wants a static NHWC input, got " + shape_str(xs));
  Tensor scales = Tensor::from_vector({1.f, 1.f, scale_at_least(a.size[0], xs[1]), scale_at_least(a.size[1], xs[2])}, {4});
  std::string scales_name = initializer(scales, name_[y] + "_scales");
  auto* r = emit("Resize", {nchw(x), "", scales_name}, {out(y, true)});
  // jax.image.resize's conventions (tensor/ops/resize.h): half-pixel centers; nearest takes
  // floor((o + 0.5) * in / out), which is rounding the half-pixel position half up.
  auto* mode = r->add_attribute();
  mode->set_name("mode");
  mode->set_type(onnx::AttributeProto::STRING);
  mode->set_s(a.interpolation == Interpolation::nearest ? "nearest" : "linear");
  auto* ctm = r->add_attribute();
  ctm->set_name("coordinate_transformation_mode");
  ctm->set_type(onnx::AttributeProto::STRING);
  ctm->set_s("half_pixel");
  if (a.interpolation == Interpolation::nearest) {
    auto* nm = r->add_attribute();
    nm->set_name("nearest_mode");
    nm->set_type(onnx::AttributeProto::STRING);
    nm->set_s("round_prefer_ceil");
  }
}

}  // namespace kiln::runtime_export::onnx_io
