#pragma once
// The geometry of one NHWC transposed convolution as oneDNN's deconvolution sees it, shared by
// conv_transpose2d (training and eager inference) and the inference plan's primitive.
#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/ops/conv_transpose.h"
#include "tensor/tensor.h"

namespace kiln {

struct DeconvGeometry {
  int64_t n = 0, h = 0, w = 0, c = 0, kh = 0, kw = 0, o = 0, oh = 0, ow = 0;
  // Keras's crops as oneDNN's paddings; pad_r may be negative (positions only the bias reaches).
  dnnl::memory::dims strides, dilates, pad_l, pad_r;  // oneDNN's dilation counts from 0

  dnnl::memory::dims src_dims() const { return {n, c, h, w}; }
  dnnl::memory::dims dst_dims() const { return {n, o, oh, ow}; }
  dnnl::memory::dims weight_dims() const { return {o, c, kh, kw}; }  // oneDNN's (O, I, H, W)
  Shape dst_shape() const { return {n, oh, ow, o}; }  // NHWC
  // A Keras [KH, KW, O, C] kernel buffer of `dtype` seen through oneDNN's (O, I, H, W) order.
  dnnl::memory::desc user_weights_md(DType dtype) const {
    return {weight_dims(), onednn::to_dnnl(dtype), dnnl::memory::dims{c, 1, kw * o * c, o * c}};
  }
  // A forward deconvolution over these descriptors (a null bias: none).
  dnnl::deconvolution_forward::desc forward_desc(dnnl::prop_kind prop, const dnnl::memory::desc& src,
                                                 const dnnl::memory::desc& weights, const dnnl::memory::desc* bias,
                                                 const dnnl::memory::desc& dst) const {
    const auto alg = dnnl::algorithm::deconvolution_direct;
    return bias ? dnnl::deconvolution_forward::desc(prop, alg, src, weights, *bias, dst, strides, dilates, pad_l, pad_r)
                : dnnl::deconvolution_forward::desc(prop, alg, src, weights, dst, strides, dilates, pad_l, pad_r);
  }
  void add_to(onednn::KeyBuilder& k) const {
    k.add(Shape{n, h, w, c, kh, kw, o, oh, ow}).add(Shape(strides)).add(Shape(dilates)).add(Shape(pad_l)).add(Shape(pad_r));
  }
};

// Checks the ranks and channels and plans both spatial dimensions (Keras's arithmetic,
// conv_transpose_spatial). Throws std::invalid_argument naming `op` and `shapes`.
DeconvGeometry deconv_geometry(const Shape& x_nhwc, const Shape& w, const ConvTranspose2dAttrs& attrs, const char* op,
                               const std::string& shapes);

}  // namespace kiln
