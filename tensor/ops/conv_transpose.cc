#include "tensor/ops/conv_transpose.h"

#include <stdexcept>
#include <unordered_map>

#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/ops/common.h"
#include "tensor/ops/conv_transpose_geometry.h"
#include "tensor/ops/recorder.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/shape_ops.h"

namespace kiln {

ConvTransposeSpatial conv_transpose_spatial(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                                            Padding padding, int64_t output_padding, const char* op,
                                            const std::string& shapes) {
  // plan_spatial's checks (positive, below oneDNN's 32-bit extent) on the kernel side; its
  // 'valid' window test does not apply, so it plans 'same'.
  plan_spatial(in, kernel, stride, dilation, Padding::same, op, shapes);
  if (output_padding < -1 || output_padding >= stride) {
    throw std::invalid_argument(std::string(op) + ": output_padding " + std::to_string(output_padding) +
                                " must be below the stride " + std::to_string(stride) + " (" + shapes + ")");
  }
  const int64_t span = (kernel - 1) * dilation + 1;
  int64_t left = 0, right = 0;
  if (padding == Padding::valid) {
    left = span - 1;
    right = span - 1 + (output_padding < 0 ? std::max(span, stride) - span : output_padding);
  } else {
    const int64_t total = output_padding < 0 ? stride + span - 2 : span + span % 2 - 2 + output_padding;
    left = std::min(total / 2 + total % 2, span - 1);
    right = total - left;
  }
  ConvTransposeSpatial p;
  p.crop_begin = span - 1 - left;
  p.crop_end = span - 1 - right;
  // in, stride and span are below 2^31, so this fits int64.
  p.out = in == 0 ? 0 : (in - 1) * stride + span - p.crop_begin - p.crop_end;
  if (p.out > kMaxSpatialExtent) {
    throw std::invalid_argument(std::string(op) + ": output size " + std::to_string(p.out) + " exceeds " +
                                std::to_string(kMaxSpatialExtent) + ", the largest spatial extent oneDNN indexes (" +
                                shapes + ")");
  }
  // p.out >= 0: Keras's 'same' with an even kernel and output_padding 0 gives an empty output
  // for a one-pixel input, and so does Kiln.
  return p;
}

Shape conv_transpose2d_output_shape(const Shape& x, const Shape& w, const ConvTranspose2dAttrs& a, const char* op,
                                    const std::string& shapes) {
  if (x.size() != 4 || w.size() != 4) {
    throw std::invalid_argument(std::string(op) + ": wants an NHWC input and a [KH, KW, O, C] kernel (" + shapes + ")");
  }
  if (w[3] != x[3]) {
    throw std::invalid_argument(std::string(op) + ": kernel input channels " + std::to_string(w[3]) +
                                " != input channels " + std::to_string(x[3]) + " (" + shapes + ")");
  }
  ConvTransposeSpatial h = conv_transpose_spatial(x[1], w[0], a.strides[0], a.dilation[0], a.padding,
                                                  a.output_padding[0], op, shapes);
  ConvTransposeSpatial wd = conv_transpose_spatial(x[2], w[1], a.strides[1], a.dilation[1], a.padding,
                                                   a.output_padding[1], op, shapes);
  return {x[0], h.out, wd.out, w[2]};
}

DeconvGeometry deconv_geometry(const Shape& x, const Shape& w, const ConvTranspose2dAttrs& a, const char* op,
                               const std::string& shapes) {
  Shape out = conv_transpose2d_output_shape(x, w, a, op, shapes);
  DeconvGeometry g;
  g.n = x[0], g.h = x[1], g.w = x[2], g.c = x[3];
  g.kh = w[0], g.kw = w[1], g.o = w[2];
  g.oh = out[1], g.ow = out[2];
  ConvTransposeSpatial ph = conv_transpose_spatial(g.h, g.kh, a.strides[0], a.dilation[0], a.padding, a.output_padding[0], op, shapes);
  ConvTransposeSpatial pw = conv_transpose_spatial(g.w, g.kw, a.strides[1], a.dilation[1], a.padding, a.output_padding[1], op, shapes);
  g.strides = {a.strides[0], a.strides[1]};
  g.dilates = {a.dilation[0] - 1, a.dilation[1] - 1};
  g.pad_l = {ph.crop_begin, pw.crop_begin};
  g.pad_r = {ph.crop_end, pw.crop_end};  // oneDNN's deconvolution takes a negative one
  return g;
}

namespace {

using tag = dnnl::memory::format_tag;

// The geometry with the dtype it computes in (x, w and bias share it).
struct DeconvPlan : DeconvGeometry {
  DType dtype;

  dnnl::memory::desc src_md() const { return {src_dims(), onednn::to_dnnl(dtype), tag::nhwc}; }
  dnnl::memory::desc dst_md() const { return {dst_dims(), onednn::to_dnnl(dtype), tag::nhwc}; }
  dnnl::memory::desc user_weights_md() const { return DeconvGeometry::user_weights_md(dtype); }
  dnnl::memory::desc any_weights_md() const { return {weight_dims(), onednn::to_dnnl(dtype), tag::any}; }
  dnnl::memory::desc bias_md() const { return {{o}, onednn::to_dnnl(dtype), tag::a}; }
  onednn::KeyBuilder key(const char* op, bool bias) const {
    onednn::KeyBuilder k(op);
    add_to(k);
    k.add(int64_t(dtype)).add(int64_t(bias));
    return k;
  }
};

DeconvPlan plan(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvTranspose2dAttrs& a) {
  const char* op = "conv_transpose2d";
  detail::check_floating(x, op);
  detail::check_rank(x, 4, op, "input (NHWC)");
  detail::check_rank(w, 4, op, "kernel ([KH, KW, O, C])");
  detail::check_same_dtype(x, w, op);
  DeconvPlan g;
  static_cast<DeconvGeometry&>(g) = deconv_geometry(x.shape(), w.shape(), a, op, "input " + x.describe() + ", kernel " + w.describe());
  g.dtype = x.dtype();
  if (bias.defined()) {
    detail::check_same_dtype(x, bias, op);
    if (bias.ndim() != 1 || bias.numel() != g.o) {
      throw std::invalid_argument(std::string(op) + ": bias " + bias.describe() + " does not match " +
                                  std::to_string(g.o) + " output channels of kernel " + w.describe());
    }
  }
  return g;
}

dnnl::deconvolution_forward::primitive_desc forward_pd(const DeconvPlan& g, bool bias) {
  const dnnl::memory::desc bias_md = g.bias_md();
  auto desc = g.forward_desc(dnnl::prop_kind::forward_training, g.src_md(), g.any_weights_md(), bias ? &bias_md : nullptr,
                             g.dst_md());
  return dnnl::deconvolution_forward::primitive_desc(desc, onednn::default_attr(), onednn::cpu_engine());
}

// The kernel in the layout a primitive chose (a copy only when it differs from Keras's).
dnnl::memory weights_in(const DeconvPlan& g, const Tensor& w, const dnnl::memory::desc& want, Tensor* keep) {
  dnnl::memory user = onednn::memory_of(w, g.user_weights_md());
  if (want == g.user_weights_md()) return user;
  dnnl::memory m;
  *keep = onednn::buffer_for(want, g.dtype, &m);
  onednn::reorder("conv_transpose2d_weights_reorder", user, m);
  return m;
}

Tensor backward_data(const DeconvPlan& g, const Tensor& grad, const Tensor& w) {
  Tensor gd = detail::dense(grad), wd = detail::dense(stop_gradient(w));
  Tensor dx = Tensor::empty({g.n, g.h, g.w, g.c}, g.dtype);
  auto prim = onednn::cached<dnnl::deconvolution_backward_data>(
      "conv_transpose2d_backward_data", g.key("deconv_bwd_d", false), [&] {
        auto desc = dnnl::deconvolution_backward_data::desc(dnnl::algorithm::deconvolution_direct, g.src_md(),
                                                            g.any_weights_md(), g.dst_md(), g.strides, g.dilates,
                                                            g.pad_l, g.pad_r);
        return dnnl::deconvolution_backward_data::primitive_desc(desc, onednn::default_attr(), onednn::cpu_engine(),
                                                                 forward_pd(g, false));
      });
  Tensor w_keep;
  onednn::execute("conv_transpose2d_backward_data", prim.primitive,
                  {{DNNL_ARG_DIFF_DST, onednn::memory_of(gd, g.dst_md())},
                   {DNNL_ARG_WEIGHTS, weights_in(g, wd, prim.pd.weights_desc(), &w_keep)},
                   {DNNL_ARG_DIFF_SRC, onednn::memory_of(dx, g.src_md())}});
  autograd::record_without_second_order("conv_transpose2d_backward_data", {grad, w}, {dx});
  return dx;
}

std::vector<Tensor> backward_weights(const DeconvPlan& g, const Tensor& x, const Tensor& grad, bool bias) {
  Tensor gd = detail::dense(grad), src = detail::dense(stop_gradient(x));
  Tensor dw = Tensor::empty({g.kh, g.kw, g.o, g.c}, g.dtype);
  Tensor db = bias ? Tensor::empty({g.o}, g.dtype) : Tensor();
  auto prim = onednn::cached<dnnl::deconvolution_backward_weights>(
      "conv_transpose2d_backward_weights", g.key("deconv_bwd_w", bias), [&] {
        using desc_t = dnnl::deconvolution_backward_weights::desc;
        auto alg = dnnl::algorithm::deconvolution_direct;
        auto desc = bias ? desc_t(alg, g.src_md(), g.any_weights_md(), g.bias_md(), g.dst_md(), g.strides, g.dilates,
                                  g.pad_l, g.pad_r)
                         : desc_t(alg, g.src_md(), g.any_weights_md(), g.dst_md(), g.strides, g.dilates, g.pad_l,
                                  g.pad_r);
        return dnnl::deconvolution_backward_weights::primitive_desc(desc, onednn::default_attr(),
                                                                    onednn::cpu_engine(), forward_pd(g, bias));
      });
  dnnl::memory::desc dw_md = prim.pd.query_md(dnnl::query::diff_weights_md, 0);
  dnnl::memory user_dw = onednn::memory_of(dw, g.user_weights_md());
  dnnl::memory dw_mem = user_dw;
  Tensor dw_keep;
  if (dw_md != g.user_weights_md()) dw_keep = onednn::buffer_for(dw_md, g.dtype, &dw_mem);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, onednn::memory_of(src, g.src_md())},
                                             {DNNL_ARG_DIFF_DST, onednn::memory_of(gd, g.dst_md())},
                                             {DNNL_ARG_DIFF_WEIGHTS, dw_mem}};
  if (bias) args[DNNL_ARG_DIFF_BIAS] = onednn::memory_of(db, g.bias_md());
  onednn::execute("conv_transpose2d_backward_weights", prim.primitive, args);
  if (dw_keep.defined()) onednn::reorder("conv_transpose2d_weights_reorder", dw_mem, user_dw);
  std::vector<Tensor> result{dw};
  if (bias) result.push_back(db);
  autograd::record_without_second_order("conv_transpose2d_backward_weights", {x, grad}, result);
  return result;
}

}  // namespace

Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvTranspose2dAttrs& a) {
  DeconvPlan g = plan(x, w, bias, a);
  Tensor out = Tensor::empty({g.n, g.oh, g.ow, g.o}, x.dtype());
  const bool has_bias = bias.defined();
  if (out.numel() > 0) {
    if (x.numel() == 0 || w.numel() == 0) {
      // No input reaches the output (zero input channels): oneDNN refuses empty operands, and
      // every position holds the bias.
      out = Tensor::zeros(out.shape(), x.dtype());
      if (has_bias) {
        Tensor b = detail::dense(bias);
        for (int64_t i = 0; i < out.numel(); ++i) {
          store_element(out.raw_data(), out.dtype(), i, load_element(b.raw_data(), b.dtype(), i % g.o));
        }
      }
    } else {
      Tensor src = detail::dense(x), wd = detail::dense(w);
      Tensor b = has_bias ? detail::dense(bias) : Tensor();
      auto prim = onednn::cached<dnnl::deconvolution_forward>("conv_transpose2d", g.key("deconv_fwd", has_bias),
                                                              [&] { return forward_pd(g, has_bias); });
      Tensor w_keep;
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, onednn::memory_of(src, g.src_md())},
                                                 {DNNL_ARG_WEIGHTS, weights_in(g, wd, prim.pd.weights_desc(), &w_keep)},
                                                 {DNNL_ARG_DST, onednn::memory_of(out, g.dst_md())}};
      if (has_bias) args[DNNL_ARG_BIAS] = onednn::memory_of(b, g.bias_md());
      onednn::execute("conv_transpose2d", prim.primitive, args);
    }
  }
  std::vector<Tensor> inputs{x, w};
  if (has_bias) inputs.push_back(bias);
  if (autograd::should_record(inputs)) {
    autograd::record(to_attrs(a), inputs, {out}, [g, x, w, has_bias](const std::vector<Tensor>& grads) {
      std::vector<Tensor> result(has_bias ? 3 : 2);
      const bool empty = grads[0].numel() == 0 || x.numel() == 0 || w.numel() == 0;
      if (empty) {
        // Nothing flowed through oneDNN: zeros, and the bias gradient sums over N, H, W.
        result[0] = Tensor::zeros(x.shape(), x.dtype());
        result[1] = Tensor::zeros(w.shape(), w.dtype());
        if (has_bias) result[2] = reduce_sum(grads[0], {0, 1, 2}, false);
        return result;
      }
      if (autograd::needs_input_grad(0)) result[0] = backward_data(g, grads[0], w);
      if (autograd::needs_input_grad(1) || (has_bias && autograd::needs_input_grad(2))) {
        std::vector<Tensor> wb = backward_weights(g, x, grads[0], has_bias);
        std::copy(wb.begin(), wb.end(), result.begin() + 1);
      }
      return result;
    });
  }
  return out;
}

}  // namespace kiln
