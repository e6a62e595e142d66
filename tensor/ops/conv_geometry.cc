#include "tensor/ops/conv_geometry.h"

#include <stdexcept>

#include "tensor/onednn/engine.h"

namespace kiln {

dnnl::memory::dims ConvGeometry::weight_dims() const {
  if (groups == 1) return {o, c, kh, kw};
  return {groups, o / groups, c / groups, kh, kw};
}

dnnl::memory::desc ConvGeometry::user_weights_md(DType dtype) const {
  const int64_t cg = c / groups;
  const auto dt = onednn::to_dnnl(dtype);
  if (groups == 1) return {weight_dims(), dt, dnnl::memory::format_tag::hwio};
  return {weight_dims(), dt, dnnl::memory::dims{o / groups, 1, o, kw * cg * o, cg * o}};
}

ConvGeometry conv_geometry(const Shape& x, const Shape& w, const Conv2dAttrs& attrs, const char* op,
                           const std::string& shapes) {
  if (x.size() != 4 || w.size() != 4) {
    throw std::invalid_argument(std::string(op) + ": wants an NHWC input and an HWIO kernel (" + shapes + ")");
  }
  ConvGeometry g;
  g.n = x[0], g.h = x[1], g.w = x[2], g.c = x[3];
  g.kh = w[0], g.kw = w[1], g.o = w[3], g.groups = attrs.groups;
  if (g.groups <= 0 || g.c % g.groups != 0 || g.o % g.groups != 0) {
    throw std::invalid_argument(std::string(op) + ": groups=" + std::to_string(attrs.groups) +
                                " must divide input and output channels (" + shapes + ")");
  }
  if (w[2] != g.c / g.groups) {  // not w[2] * groups: a crafted zero-size kernel may hold a huge w[2]
    throw std::invalid_argument(std::string(op) + ": kernel input channels " + std::to_string(w[2]) + " x groups " +
                                std::to_string(g.groups) + " != input channels " + std::to_string(g.c) + " (" +
                                shapes + ")");
  }
  g.ph = plan_spatial(g.h, g.kh, attrs.strides[0], attrs.dilation[0], attrs.padding, op, shapes,
                      pads_of_dim(attrs.pads, 0));
  g.pw = plan_spatial(g.w, g.kw, attrs.strides[1], attrs.dilation[1], attrs.padding, op, shapes,
                      pads_of_dim(attrs.pads, 1));
  g.strides = {attrs.strides[0], attrs.strides[1]};
  g.dilates = {attrs.dilation[0] - 1, attrs.dilation[1] - 1};
  g.pad_l = {g.ph.pad_before, g.pw.pad_before};
  g.pad_r = {g.ph.pad_after, g.pw.pad_after};
  return g;
}

}  // namespace kiln
