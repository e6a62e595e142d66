#include "tensor/ops/layer_norm.h"

#include <cmath>
#include <stdexcept>

#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/common.h"
#include "tensor/ops/recorder.h"

namespace kiln {
namespace {

using tag = dnnl::memory::format_tag;
using flags = dnnl::normalization_flags;

const flags kScaleShift = flags::use_scale | flags::use_shift;

// x as [rows, C]: oneDNN normalizes over the last logical axis.
dnnl::memory::desc data_md(const Tensor& x) {
  const int64_t c = x.shape().back();
  return {{c > 0 ? x.numel() / c : 0, c}, onednn::to_dnnl(x.dtype()), tag::ab};
}

dnnl::memory::desc stat_md(const Tensor& x) {
  const int64_t c = x.shape().back();
  return {{c > 0 ? x.numel() / c : 0}, dnnl::memory::data_type::f32, tag::a};
}

dnnl::memory::desc channel_md(int64_t c) { return {{c}, dnnl::memory::data_type::f32, tag::a}; }

void check_param(const Tensor& p, int64_t c, const char* what, const Tensor& x) {
  detail::check_defined(p, "layer_norm", what);
  if (p.dtype() != DType::f32 || p.ndim() != 1 || p.numel() != c) {
    throw std::invalid_argument(std::string("layer_norm: ") + what + " must be f32[" + std::to_string(c) +
                                "] for input " + x.describe() + ", got " + p.describe());
  }
}

dnnl::layer_normalization_forward::primitive_desc forward_pd(const dnnl::memory::desc& md,
                                                             const dnnl::memory::desc& smd, float eps,
                                                             dnnl::prop_kind prop) {
  return dnnl::layer_normalization_forward::primitive_desc(
      dnnl::layer_normalization_forward::desc(prop, md, smd, eps, kScaleShift), onednn::default_attr(),
      onednn::cpu_engine());
}

struct Statistics {
  Tensor mean, variance;  // f32 [rows]
};

Tensor forward(const Tensor& src, const Tensor& gamma, const Tensor& beta, float eps, Statistics* stats) {
  const char* op = "layer_norm";
  auto md = data_md(src), smd = stat_md(src);
  const auto prop = stats ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  auto prim = onednn::cached<dnnl::layer_normalization_forward>(
      op, onednn::KeyBuilder(op).add(md).add(eps).add(int64_t(stats != nullptr)),
      [&] { return forward_pd(md, smd, eps, prop); });
  Tensor y = Tensor::empty(src.shape(), src.dtype());
  const int64_t c = src.shape().back();
  auto cmd = channel_md(c);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, onednn::memory_of(src, md)},
                                             {DNNL_ARG_DST, onednn::memory_of(y, md)},
                                             {DNNL_ARG_SCALE, onednn::memory_of(detail::dense(gamma), cmd)},
                                             {DNNL_ARG_SHIFT, onednn::memory_of(detail::dense(beta), cmd)}};
  if (stats) {
    stats->mean = Tensor::empty({smd.dims()[0]});
    stats->variance = Tensor::empty({smd.dims()[0]});
    args[DNNL_ARG_MEAN] = onednn::memory_of(stats->mean, smd);
    args[DNNL_ARG_VARIANCE] = onednn::memory_of(stats->variance, smd);
  }
  onednn::execute(op, prim.primitive, args);
  return y;
}

// {dx, dgamma, dbeta}.
std::vector<Tensor> backward(const Tensor& src, const Tensor& grad_in, const Tensor& gamma, const Tensor& beta,
                             const Statistics& stats, float eps) {
  const char* op = "layer_norm_backward";
  // A gradient of another float dtype (a mixed graph) goes in as the input's.
  Tensor grad = detail::dense(grad_in.dtype() == src.dtype() ? grad_in : cast(grad_in, src.dtype()));
  auto md = data_md(src), smd = stat_md(src), gmd = md;
  auto prim = onednn::cached<dnnl::layer_normalization_backward>(
      op, onednn::KeyBuilder(op).add(md).add(eps), [&] {
        auto desc = dnnl::layer_normalization_backward::desc(dnnl::prop_kind::backward, gmd, md, smd, eps, kScaleShift);
        return dnnl::layer_normalization_backward::primitive_desc(
            desc, onednn::default_attr(), onednn::cpu_engine(),
            forward_pd(md, smd, eps, dnnl::prop_kind::forward_training));
      });
  const int64_t c = src.shape().back();
  Tensor dx = Tensor::empty(src.shape(), src.dtype());
  Tensor dgamma = Tensor::empty({c}), dbeta = Tensor::empty({c});
  auto cmd = channel_md(c);
  onednn::execute(op, prim.primitive,
                  {{DNNL_ARG_SRC, onednn::memory_of(src, md)},
                   {DNNL_ARG_DIFF_DST, onednn::memory_of(grad, gmd)},
                   {DNNL_ARG_MEAN, onednn::memory_of(stats.mean, smd)},
                   {DNNL_ARG_VARIANCE, onednn::memory_of(stats.variance, smd)},
                   {DNNL_ARG_SCALE, onednn::memory_of(detail::dense(gamma), cmd)},
                   {DNNL_ARG_SHIFT, onednn::memory_of(detail::dense(beta), cmd)},
                   {DNNL_ARG_DIFF_SRC, onednn::memory_of(dx, md)},
                   {DNNL_ARG_DIFF_SCALE, onednn::memory_of(dgamma, cmd)},
                   {DNNL_ARG_DIFF_SHIFT, onednn::memory_of(dbeta, cmd)}});
  return {dx, dgamma, dbeta};
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  const char* op = "layer_norm";
  detail::check_defined(x, op, "input");
  detail::check_floating(x, op);
  if (x.ndim() < 1) throw std::invalid_argument("layer_norm: input needs rank >= 1, got " + x.describe());
  const int64_t c = x.shape().back();
  check_param(gamma, c, "gamma", x);
  check_param(beta, c, "beta", x);
  if (!(eps >= 0) || !std::isfinite(eps)) {
    throw std::invalid_argument("layer_norm: epsilon must be finite and >= 0, got " + std::to_string(eps));
  }
  Tensor src = detail::dense(x);
  const bool record = autograd::should_record({&x, &gamma, &beta});
  if (x.numel() == 0) return Tensor::empty(x.shape(), x.dtype());
  Statistics stats;
  Tensor y = forward(src, gamma, beta, eps, record ? &stats : nullptr);
  if (record) {
    ops::Attrs call(op);
    call.set("epsilon", eps);
    autograd::record(call, {x, gamma, beta}, {y}, [=](const std::vector<Tensor>& g) {
      std::vector<Tensor> grads = backward(src, g[0], gamma, beta, stats, eps);
      autograd::record_without_second_order("layer_norm_backward", {x, g[0], gamma}, grads);
      return grads;
    });
  }
  return y;
}

}  // namespace kiln
