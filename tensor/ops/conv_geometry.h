#pragma once
// The geometry of one NHWC x HWIO convolution as oneDNN sees it, shared by conv2d (training
// and eager inference) and the inference plan's float and int8 convolutions.
#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "tensor/ops/conv.h"
#include "tensor/tensor.h"

namespace kiln {

struct ConvGeometry {
  int64_t n = 0, h = 0, w = 0, c = 0, kh = 0, kw = 0, o = 0, groups = 1;
  SpatialPlan ph, pw;
  dnnl::memory::dims strides, dilates, pad_l, pad_r;  // oneDNN's dilation counts from 0

  dnnl::memory::dims src_dims() const { return {n, c, h, w}; }
  dnnl::memory::dims dst_dims() const { return {n, o, ph.out, pw.out}; }
  Shape dst_shape() const { return {n, ph.out, pw.out, o}; }  // NHWC
  // OIHW, or GOIHW for grouped convolutions.
  dnnl::memory::dims weight_dims() const;
  // A Keras HWIO kernel buffer of `dtype` seen through oneDNN's (G)OIHW logical order.
  dnnl::memory::desc user_weights_md(DType dtype) const;
  // A forward convolution over these descriptors (tag::any where oneDNN should choose).
  dnnl::convolution_forward::desc forward_desc(dnnl::prop_kind prop, dnnl::algorithm algorithm,
                                               const dnnl::memory::desc& src, const dnnl::memory::desc& weights,
                                               const dnnl::memory::desc& bias, const dnnl::memory::desc& dst) const {
    return dnnl::convolution_forward::desc(prop, algorithm, src, weights, bias, dst, strides, dilates, pad_l, pad_r);
  }
};

// Checks that the kernel's channels and the groups fit the input's and plans both spatial
// dimensions (Keras padding). Throws std::invalid_argument naming `op` and `shapes`.
ConvGeometry conv_geometry(const Shape& x_nhwc, const Shape& w_hwio, const Conv2dAttrs& attrs, const char* op,
                           const std::string& shapes);

}  // namespace kiln
