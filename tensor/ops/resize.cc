#include "tensor/ops/resize.h"

#include <stdexcept>

#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/ops/common.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/recorder.h"

namespace kiln {

Interpolation interpolation_from_name(const std::string& name) {
  if (name == "nearest") return Interpolation::nearest;
  if (name == "bilinear") return Interpolation::bilinear;
  throw std::invalid_argument("unknown interpolation '" + name + "' (expected 'nearest' or 'bilinear')");
}

const char* interpolation_name(Interpolation interpolation) {
  return interpolation == Interpolation::nearest ? "nearest" : "bilinear";
}

namespace {

using tag = dnnl::memory::format_tag;

struct ResizeGeometry {
  int64_t n, h, w, c, oh, ow;
  DType dtype;
  dnnl::algorithm alg;
  dnnl::memory::desc src_md() const { return {{n, c, h, w}, onednn::to_dnnl(dtype), tag::nhwc}; }
  dnnl::memory::desc dst_md() const { return {{n, c, oh, ow}, onednn::to_dnnl(dtype), tag::nhwc}; }
  onednn::KeyBuilder key(const char* op) const {
    onednn::KeyBuilder k(op);
    return k.add(Shape{n, h, w, c, oh, ow}).add(int64_t(dtype)).add(int64_t(alg));
  }
};

ResizeGeometry plan(const Tensor& x, const Resize2dAttrs& a) {
  const char* op = "resize2d";
  detail::check_floating(x, op);
  detail::check_rank(x, 4, op, "input (NHWC)");
  const Shape& s = x.shape();
  for (int i = 0; i < 2; ++i) {
    if (a.size[i] <= 0 || a.size[i] > kMaxSpatialExtent) {
      throw std::invalid_argument(std::string(op) + ": output size " + shape_str({a.size[0], a.size[1]}) +
                                  " must be positive and at most " + std::to_string(kMaxSpatialExtent) + " (input " +
                                  x.describe() + ")");
    }
    if (s[1 + i] <= 0) {
      throw std::invalid_argument(std::string(op) + ": cannot resize the empty image of input " + x.describe() +
                                  " to " + shape_str({a.size[0], a.size[1]}));
    }
  }
  checked_nbytes({s[0], a.size[0], a.size[1], s[3]}, dtype_size(x.dtype()), op);
  return {s[0], s[1], s[2], s[3], a.size[0], a.size[1], x.dtype(),
          a.interpolation == Interpolation::nearest ? dnnl::algorithm::resampling_nearest
                                                    : dnnl::algorithm::resampling_linear};
}

dnnl::resampling_forward::primitive_desc forward_pd(const ResizeGeometry& g) {
  return dnnl::resampling_forward::primitive_desc(
      dnnl::resampling_forward::desc(dnnl::prop_kind::forward_training, g.alg, g.src_md(), g.dst_md()),
      onednn::default_attr(), onednn::cpu_engine());
}

Tensor resize_backward(const ResizeGeometry& g, const Tensor& grad) {
  Tensor dx = Tensor::empty({g.n, g.h, g.w, g.c}, g.dtype);
  if (dx.numel() > 0) {
    Tensor gd = detail::dense(grad);
    auto prim = onednn::cached<dnnl::resampling_backward>("resize2d_backward", g.key("resize_bwd"), [&] {
      auto desc = dnnl::resampling_backward::desc(g.alg, g.src_md(), g.dst_md());
      return dnnl::resampling_backward::primitive_desc(desc, onednn::default_attr(), onednn::cpu_engine(),
                                                       forward_pd(g));
    });
    onednn::execute("resize2d_backward", prim.primitive,
                    {{DNNL_ARG_DIFF_DST, onednn::memory_of(gd, g.dst_md())},
                     {DNNL_ARG_DIFF_SRC, onednn::memory_of(dx, g.src_md())}});
  }
  autograd::record_without_second_order("resize2d_backward", {grad}, {dx});
  return dx;
}

}  // namespace

Tensor resize2d(const Tensor& x, const Resize2dAttrs& a) {
  ResizeGeometry g = plan(x, a);
  Tensor out = Tensor::empty({g.n, g.oh, g.ow, g.c}, x.dtype());
  if (out.numel() > 0) {
    Tensor src = detail::dense(x);
    auto prim = onednn::cached<dnnl::resampling_forward>("resize2d", g.key("resize_fwd"), [&] { return forward_pd(g); });
    onednn::execute("resize2d", prim.primitive,
                    {{DNNL_ARG_SRC, onednn::memory_of(src, g.src_md())}, {DNNL_ARG_DST, onednn::memory_of(out, g.dst_md())}});
  }
  if (autograd::should_record({&x})) {
    autograd::record(to_attrs(a), {x}, {out}, [g](const std::vector<Tensor>& grads) {
      return std::vector<Tensor>{resize_backward(g, grads[0])};
    });
  }
  return out;
}

Tensor upsample2d(const Tensor& x, std::array<int64_t, 2> factors, Interpolation interpolation) {
  detail::check_rank(x, 4, "upsample2d", "input (NHWC)");
  Resize2dAttrs a;
  a.interpolation = interpolation;
  for (int i = 0; i < 2; ++i) {
    if (factors[i] <= 0 || factors[i] > kMaxSpatialExtent) {
      throw std::invalid_argument("upsample2d: factors " + shape_str({factors[0], factors[1]}) +
                                  " must be positive (input " + x.describe() + ")");
    }
    const int64_t in = x.shape()[1 + i];
    if (in > kMaxSpatialExtent / factors[i]) {
      throw std::invalid_argument("upsample2d: " + std::to_string(in) + " x " + std::to_string(factors[i]) +
                                  " exceeds " + std::to_string(kMaxSpatialExtent) + " (input " + x.describe() + ")");
    }
    a.size[i] = in * factors[i];
  }
  return resize2d(x, a);
}

}  // namespace kiln
