// Float convolutions (conv2d, fused_conv2d) as one oneDNN convolution with post-ops.
#include "runtime_export/plan/builder.h"
#include "tensor/ops/conv_geometry.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/shape_ops.h"

namespace kiln::runtime_export::plan_detail {
namespace {

// The kernel taps of one spatial dimension that read at least one input element (not only
// padding) at some output position: taps outside [lo, hi] multiply zeros everywhere. Small
// feature maps under a padded kernel (ResNet's 3x3 convolutions at 1x1 or 2x2) have such taps,
// and oneDNN's kernels spend time on them.
struct TapWindow {
  int64_t lo = 0, hi = -1;
};
TapWindow taps_reading_input(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad_before, int64_t out) {
  TapWindow t{kernel, -1};
  for (int64_t k = 0; k < kernel; ++k) {
    const int64_t offset = k * dilation - pad_before;  // input index of tap k at output 0
    const int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;  // first output inside
    if (first < out && first * stride + offset < in) t.lo = std::min(t.lo, k), t.hi = std::max(t.hi, k);
  }
  return t;
}

// The same convolution over only the taps that read input: the kernel cropped to them and
// the padding moved by as much, so the output and every product that is not with padding
// stay the same. Returns the first kept taps as a key for the packed weights, or "" (and
// changes nothing) where nothing can be cropped.
std::string crop_to_input_taps(const Shape& xs, Tensor& w, Conv2dAttrs& a, const ConvGeometry& g) {
  const TapWindow th = taps_reading_input(g.h, g.kh, a.strides[0], a.dilation[0], g.ph.pad_before, g.ph.out);
  const TapWindow tw = taps_reading_input(g.w, g.kw, a.strides[1], a.dilation[1], g.pw.pad_before, g.pw.out);
  if (th.hi < th.lo || tw.hi < tw.lo) return "";  // all padding: leave it to oneDNN as it is
  if (th.lo == 0 && th.hi == g.kh - 1 && tw.lo == 0 && tw.hi == g.kw - 1) return "";
  const Pads2d pads{g.ph.pad_before - th.lo * a.dilation[0], g.pw.pad_before - tw.lo * a.dilation[1],
                    g.ph.pad_after - (g.kh - 1 - th.hi) * a.dilation[0], g.pw.pad_after - (g.kw - 1 - tw.hi) * a.dilation[1]};
  for (int64_t p : pads) {
    if (p < 0) return "";
  }
  Conv2dAttrs cropped = a;
  cropped.padding = Padding::explicit_pads;
  cropped.pads = pads;
  Tensor cw = contiguous(slice(slice(w, 0, th.lo, th.hi + 1), 1, tw.lo, tw.hi + 1));
  if (conv_geometry(xs, cw.shape(), cropped, "conv2d", "cropped kernel " + shape_str(cw.shape())).dst_shape() != g.dst_shape()) {
    return "";
  }
  w = std::move(cw);
  a = cropped;
  return "taps from " + std::to_string(th.lo) + "," + std::to_string(tw.lo);
}

}  // namespace

bool Builder::conv(const graph::Node& n) {
  if (!constant(n.inputs[1]) || (n.inputs.size() > 2 && !constant(n.inputs[2]))) return false;
  const bool fused = n.call.is(ops::OpKind::fused_conv2d);
  Conv2dAttrs a;
  Epilogue act;
  if (fused) {
    const ops::FusedConv2dAttrs f = ops::parse_attrs_of<ops::OpKind::fused_conv2d>(n.call);
    a = f.conv;
    act = f.activation;
  } else {
    a = ops::parse_attrs_of<ops::OpKind::conv2d>(n.call);
    act = ops::epilogue_of(a.activation);
  }
  int x = value_[n.inputs[0]];
  const Shape xs = t(x).shape;  // a copy: adding tensors moves them
  Tensor w = t(value_[n.inputs[1]]).constant;
  if (xs.size() != 4 || w.ndim() != 4 || !is_float(t(x).dtype)) return false;
  if (a.groups <= 0 || xs[3] % a.groups != 0 || w.shape()[2] != xs[3] / a.groups || w.shape()[3] % a.groups != 0) return false;  // the eager op names it
  ConvGeometry g = conv_geometry(xs, w.shape(), a, "conv2d", "x " + shape_str(xs) + ", kernel " + shape_str(w.shape()));
  const std::string packed_variant = crop_to_input_taps(xs, w, a, g);
  if (!packed_variant.empty()) {
    g = conv_geometry(xs, w.shape(), a, "conv2d", "x " + shape_str(xs) + ", cropped kernel " + shape_str(w.shape()));
  }
  // One output position whose window is the whole input (ResNet's last stages at small
  // sizes, once cropped): the convolution is a matmul of each image's NHWC elements by the
  // HWIO kernel seen as [KH * KW * C, O], which oneDNN runs several times faster than its
  // convolution kernels at these shapes.
  if (g.groups == 1 && g.ph.out == 1 && g.pw.out == 1 && g.kh == g.h && g.kw == g.w && g.ph.pad_before == 0 &&
      g.pw.pad_before == 0 && a.dilation[0] == 1 && a.dilation[1] == 1) {
    const Tensor w2d = kiln::reshape(w, {g.kh * g.kw * g.c, g.o});
    return dense_matmul(n, x, w2d, g.dst_shape(), act, fused || act != Epilogue::none, packed_variant + " as matmul");
  }
  const auto dt = onednn::to_dnnl(p_.float_dtype());
  memory::desc src_any(g.src_dims(), dt, tag::any), w_any(g.weight_dims(), dt, tag::any), dst_any(g.dst_dims(), dt, tag::any);
  const bool has_bias = n.inputs.size() > 2;
  memory::desc bias_md = has_bias ? memory::desc({g.o}, memory::data_type::f32, tag::a) : memory::desc();
  const bool residual = n.inputs.size() > 3;
  dnnl::convolution_forward::primitive_desc pd;
  try {
    pd = dnnl::convolution_forward::primitive_desc(
        g.forward_desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_any, w_any, bias_md, dst_any),
        epilogue_attr(residual, act), onednn::cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  int src = p_.as_desc(x, pd.src_desc(), p_.float_dtype());
  PTensor wt{w.shape(), p_.float_dtype(), pd.weights_desc(), Home::constant};
  wt.constant = weights_.get(n.inputs[1], w, g.user_weights_md(w.dtype()), pd.weights_desc(), packed_variant);
  int wid = p_.add_tensor(std::move(wt));
  Shape ys = g.dst_shape();
  int dst = residual ? destination_for_residual(n.inputs[3], pd.dst_desc(), ys, p_.float_dtype())
                     : p_.new_slot(ys, p_.float_dtype(), pd.dst_desc());
  std::vector<std::pair<int, int>> bind{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wid}, {DNNL_ARG_DST, dst}};
  if (has_bias) bind.push_back({DNNL_ARG_BIAS, bias_tensor(n, g.o, {g.o})});
  p_.add_primitive("conv2d", pd, dnnl::convolution_forward(pd), bind, fused || act != Epilogue::none);
  value_[n.outputs[0]] = dst;
  return true;
}

}  // namespace kiln::runtime_export::plan_detail
