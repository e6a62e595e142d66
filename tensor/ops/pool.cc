#include "tensor/ops/pool.h"

#include <algorithm>
#include <cmath>

#include "tensor/ops/recorder.h"
#include "tensor/ops/common.h"
#include "tensor/ops/eltwise.h"
#include "tensor/ops/max_pool_kernel.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"

namespace kiln {
namespace {

using tag = dnnl::memory::format_tag;

struct PoolGeometry {
  int64_t n, h, w, c;
  SpatialPlan ph, pw;
  dnnl::memory::dims strides, kernel, pad_l, pad_r;
  DType dtype;
  dnnl::memory::desc src_md() const { return {{n, c, h, w}, onednn::to_dnnl(dtype), tag::nhwc}; }
  dnnl::memory::desc dst_md() const { return {{n, c, ph.out, pw.out}, onednn::to_dnnl(dtype), tag::nhwc}; }
  std::string key() const {
    return shape_str({n, h, w, c}) + shape_str(kernel) + shape_str(strides) + shape_str(pad_l) + shape_str(pad_r) +
           dtype_name(dtype);
  }
};

PoolGeometry plan(const Tensor& x, const Pool2dAttrs& opt, const char* op) {
  // u8/s8 pool too (quantized inference: oneDNN pools int8 directly; no gradient).
  if (!x.defined() || (x.dtype() != DType::u8 && x.dtype() != DType::s8)) detail::check_floating(x, op);
  detail::check_rank(x, 4, op, "input (NHWC)");
  PoolGeometry g;
  g.n = x.shape()[0], g.h = x.shape()[1], g.w = x.shape()[2], g.c = x.shape()[3];
  g.dtype = x.dtype();
  std::string shapes = "input " + x.describe() + ", pool " + shape_str({opt.pool_size[0], opt.pool_size[1]});
  Pool2dPlan p = plan_pool2d(x.shape(), opt, op, shapes);
  g.ph = p.h;
  g.pw = p.w;
  g.strides = {p.stride_h, p.stride_w};
  g.kernel = {opt.pool_size[0], opt.pool_size[1]};
  g.pad_l = {g.ph.pad_before, g.pw.pad_before};
  g.pad_r = {g.ph.pad_after, g.pw.pad_after};
  return g;
}

dnnl::pooling_forward::primitive_desc forward_pd(const PoolGeometry& g, dnnl::algorithm alg, dnnl::prop_kind prop) {
  return dnnl::pooling_forward::primitive_desc(
      dnnl::pooling_forward::desc(prop, alg, g.src_md(), g.dst_md(), g.strides, g.kernel, g.pad_l, g.pad_r),
      onednn::default_attr(), onednn::cpu_engine());
}

Tensor pool_backward(const PoolGeometry& g, dnnl::algorithm alg, const char* op, const Tensor& grad,
                     const Tensor& workspace) {
  Tensor gd = detail::dense(grad);
  Tensor dx = Tensor::empty({g.n, g.h, g.w, g.c}, g.dtype);
  auto prim = onednn::cached<dnnl::pooling_backward>(op, onednn::KeyBuilder(op).add(g.key()), [&] {
    auto desc = dnnl::pooling_backward::desc(alg, g.src_md(), g.dst_md(), g.strides, g.kernel, g.pad_l, g.pad_r);
    return dnnl::pooling_backward::primitive_desc(desc, onednn::default_attr(), onednn::cpu_engine(),
                                                  forward_pd(g, alg, dnnl::prop_kind::forward_training));
  });
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_DIFF_DST, onednn::memory_of(gd, g.dst_md())},
                                             {DNNL_ARG_DIFF_SRC, onednn::memory_of(dx, g.src_md())}};
  if (workspace.defined()) {
    args[DNNL_ARG_WORKSPACE] = dnnl::memory(prim.pd.workspace_desc(), onednn::cpu_engine(), workspace.raw_data());
  }
  onednn::execute(op, prim.primitive, args);
  autograd::record_without_second_order(op, {grad}, {dx});
  return dx;
}

// oneDNN's max pooling returns the largest non-NaN value of a window, and -FLT_MAX for a
// window of -inf only; PyTorch returns NaN and -inf. Both need a NaN or an infinity in src,
// which one scan finds; only then are windows recomputed, and only those outputs rewritten.
// The backward still sends a NaN window's gradient to the element oneDNN picked.
void fix_max_pool_nan_and_inf(const PoolGeometry& g, const Tensor& src, Tensor& out) {
  if ((src.dtype() != DType::f32 && src.dtype() != DType::bf16) || std::isfinite(detail::max_abs(src))) return;
  const void* x = src.raw_data();
  void* y = out.raw_data();
  const DType dt = src.dtype();
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t oh = 0; oh < g.ph.out; ++oh) {
      for (int64_t ow = 0; ow < g.pw.out; ++ow) {
        for (int64_t c = 0; c < g.c; ++c) {
          double m = -INFINITY;
          for (int64_t i = oh * g.strides[0] - g.pad_l[0], ie = i + g.kernel[0]; i < ie && !std::isnan(m); ++i) {
            for (int64_t j = ow * g.strides[1] - g.pad_l[1], je = j + g.kernel[1]; j < je; ++j) {
              if (i < 0 || j < 0 || i >= g.h || j >= g.w) continue;
              double v = load_element(x, dt, ((n * g.h + i) * g.w + j) * g.c + c);
              if (std::isnan(v)) {
                m = v;
                break;
              }
              m = std::max(m, v);
            }
          }
          if (std::isnan(m) || m == -INFINITY) store_element(y, dt, ((n * g.ph.out + oh) * g.pw.out + ow) * g.c + c, m);
        }
      }
    }
  }
}

detail::MaxPoolGeometry kernel_geometry(const PoolGeometry& g) {
  return {g.n, g.h, g.w, g.c, g.ph.out, g.pw.out, g.kernel[0], g.kernel[1], g.strides[0], g.strides[1],
          g.pad_l[0], g.pad_l[1]};
}

// f32 and bf16 max pooling on Kiln's kernel (max_pool_kernel.h says why), with its argmax
// (a u8 per output) kept for the backward.
Tensor kiln_max_pool(const Tensor& x, const Pool2dAttrs& opt, const PoolGeometry& g, bool training) {
  const detail::MaxPoolGeometry kg = kernel_geometry(g);
  Tensor src = detail::dense(x);
  Tensor out = Tensor::empty({g.n, g.ph.out, g.pw.out, g.c}, x.dtype());
  Tensor argmax = training ? Tensor::empty(out.shape(), DType::u8) : Tensor();
  detail::max_pool_forward(kg, g.dtype, src.raw_data(), out.raw_data(),
                           training ? static_cast<uint8_t*>(argmax.raw_data()) : nullptr);
  if (training) {
    autograd::record(to_attrs("max_pool2d", opt), {x}, {out}, [kg, argmax](const std::vector<Tensor>& grads) {
      Tensor gd = detail::dense(grads[0]);
      Tensor dx = Tensor::empty({kg.n, kg.h, kg.w, kg.c}, gd.dtype());
      detail::max_pool_backward(kg, gd.dtype(), gd.raw_data(), static_cast<const uint8_t*>(argmax.raw_data()),
                                dx.raw_data());
      autograd::record_without_second_order("max_pool2d_backward", {grads[0]}, {dx});
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

Tensor pool(const Tensor& x, const Pool2dAttrs& opt, dnnl::algorithm alg, const char* op, const char* bwd_op) {
  PoolGeometry g = plan(x, opt, op);
  bool training = autograd::should_record({&x});
  if (alg == dnnl::algorithm::pooling_max && detail::max_pool_kernel_supports(g.dtype, kernel_geometry(g))) {
    return kiln_max_pool(x, opt, g, training);
  }
  auto prop = training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  Tensor src = detail::dense(x);
  Tensor out = Tensor::empty({g.n, g.ph.out, g.pw.out, g.c}, x.dtype());
  auto prim = onednn::cached<dnnl::pooling_forward>(op, onednn::KeyBuilder(op).add(g.key()).add(int64_t(training)),
                                                    [&] { return forward_pd(g, alg, prop); });
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, onednn::memory_of(src, g.src_md())},
                                             {DNNL_ARG_DST, onednn::memory_of(out, g.dst_md())}};
  Tensor workspace;
  if (training && prim.pd.workspace_desc().get_size() > 0) {
    dnnl::memory ws;
    workspace = onednn::buffer_for(prim.pd.workspace_desc(), DType::u8, &ws);
    args[DNNL_ARG_WORKSPACE] = ws;
  }
  onednn::execute(op, prim.primitive, args);
  if (alg == dnnl::algorithm::pooling_max) fix_max_pool_nan_and_inf(g, src, out);
  if (training) {
    autograd::record(to_attrs(op, opt), {x}, {out}, [g, alg, bwd_op, workspace](const std::vector<Tensor>& grads) {
      return std::vector<Tensor>{pool_backward(g, alg, bwd_op, grads[0], workspace)};
    });
  }
  return out;
}

}  // namespace

Pool2dPlan plan_pool2d(const Shape& x, const Pool2dAttrs& a, const char* op, const std::string& shapes) {
  if (x.size() != 4) throw std::invalid_argument(std::string(op) + ": wants an NHWC input (" + shapes + ")");
  Pool2dPlan p;
  p.stride_h = a.strides[0] ? a.strides[0] : a.pool_size[0];
  p.stride_w = a.strides[1] ? a.strides[1] : a.pool_size[1];
  if (a.padding == Padding::explicit_pads) {
    for (int i = 0; i < 4; ++i) {
      if (a.pads[i] >= a.pool_size[i % 2]) {
        throw std::invalid_argument(std::string(op) + ": padding " + std::to_string(a.pads[i]) +
                                    " is not below pool size " + std::to_string(a.pool_size[i % 2]) +
                                    " (a window could hold padding alone; " + shapes + ")");
      }
    }
  }
  p.h = plan_spatial(x[1], a.pool_size[0], p.stride_h, 1, a.padding, op, shapes, pads_of_dim(a.pads, 0));
  p.w = plan_spatial(x[2], a.pool_size[1], p.stride_w, 1, a.padding, op, shapes, pads_of_dim(a.pads, 1));
  return p;
}

Tensor max_pool2d(const Tensor& x, const Pool2dAttrs& opt) {
  return pool(x, opt, dnnl::algorithm::pooling_max, "max_pool2d", "max_pool2d_backward");
}

Tensor avg_pool2d(const Tensor& x, const Pool2dAttrs& opt) {
  return pool(x, opt, dnnl::algorithm::pooling_avg_exclude_padding, "avg_pool2d", "avg_pool2d_backward");
}

namespace {

// An H x W pool: oneDNN's pooling kernels beat its generic reduction here.
Tensor global_pool2d(const Tensor& x, bool keepdims, bool max) {
  const char* op = max ? "global_max_pool2d" : "global_avg_pool2d";
  detail::check_rank(x, 4, op, "input (NHWC)");
  if (x.shape()[1] == 0 || x.shape()[2] == 0) {
    throw std::invalid_argument(std::string(op) + ": input " + x.describe() + " has no pixels to pool");
  }
  Pool2dAttrs whole;
  whole.pool_size = {x.shape()[1], x.shape()[2]};
  Tensor y = max ? max_pool2d(x, whole) : avg_pool2d(x, whole);
  return keepdims ? y : reshape(y, {x.shape()[0], x.shape()[3]});
}

}  // namespace

Tensor global_avg_pool2d(const Tensor& x, bool keepdims) { return global_pool2d(x, keepdims, false); }
Tensor global_max_pool2d(const Tensor& x, bool keepdims) { return global_pool2d(x, keepdims, true); }

}  // namespace kiln
