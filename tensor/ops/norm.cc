#include "tensor/ops/norm.h"

#include <cmath>
#include <string>

#include "tensor/ops/recorder.h"
#include "tensor/ops/common.h"
#include "tensor/ops/eltwise.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"

namespace kiln {
namespace {

using tag = dnnl::memory::format_tag;
using flags = dnnl::normalization_flags;

dnnl::memory::desc data_md(const Tensor& x) {
  int64_t c = x.shape().back();
  if (x.ndim() == 4) {
    return {{x.shape()[0], c, x.shape()[1], x.shape()[2]}, onednn::to_dnnl(x.dtype()), tag::nhwc};
  }
  return {{x.numel() / std::max<int64_t>(c, 1), c}, onednn::to_dnnl(x.dtype()), tag::nc};
}

dnnl::memory::desc channel_md(int64_t c) { return {{c}, dnnl::memory::data_type::f32, tag::a}; }

void check_param(const Tensor& p, int64_t c, const char* op, const char* what, const Tensor& x) {
  detail::check_defined(p, op, what);
  if (p.dtype() != DType::f32 || p.ndim() != 1 || p.numel() != c) {
    throw std::invalid_argument(std::string(op) + ": " + what + " must be f32[" + std::to_string(c) +
                                "] for input " + x.describe() + ", got " + p.describe());
  }
}

dnnl::batch_normalization_forward::primitive_desc forward_pd(const dnnl::memory::desc& md, float eps, flags f,
                                                             dnnl::prop_kind prop) {
  return dnnl::batch_normalization_forward::primitive_desc(
      dnnl::batch_normalization_forward::desc(prop, md, eps, f), onednn::default_attr(), onednn::cpu_engine());
}

// oneDNN 2.6 has no jit kernel for bf16 channels-last batch normalization whose channel count
// is not a multiple of 16: it runs a plain C++ loop there (nspc_bnorm:any). In MobileNetV3Small's
// bf16 training (b32, 2 threads; its 24-, 40-, 72-, 88- and 120-channel layers) batch norm took
// 105 ms of a 181 ms step, against 8 ms of the f32 step's 77. Such inputs run the f32 jit kernel
// between two conversions instead; statistics and parameters are f32 either way.
bool bf16_without_jit(const Tensor& x, float eps) {
  if (x.dtype() != DType::bf16) return false;
  auto md = data_md(x);
  auto probe = onednn::cached<dnnl::batch_normalization_forward>(
      "batch_norm", onednn::KeyBuilder("bn_jit_probe").add(md).add(eps), [&] {
        return forward_pd(md, eps, flags::use_scale | flags::use_shift, dnnl::prop_kind::forward_training);
      });
  return std::string(probe.pd.impl_info_str()).find("jit") == std::string::npos;
}

Tensor converted(const Tensor& x, DType dtype) {
  Tensor out = Tensor::empty(x.shape(), dtype);
  onednn::reorder("batch_norm_convert", onednn::memory_of(x), onednn::memory_of(out));
  return out;
}

// Returns {dx, dgamma, dbeta}. workspace: the fused ReLU's mask, when the forward fused one.
std::vector<Tensor> bn_backward(const Tensor& x, const Tensor& grad, const Tensor& gamma, const Tensor& beta,
                                const Tensor& mean, const Tensor& var, float eps, bool global_stats,
                                const Tensor& workspace) {
  const char* op = "batch_norm_backward";
  Tensor src = detail::dense(x), gd = detail::dense(grad);
  const bool via_f32 = bf16_without_jit(src, eps);
  if (via_f32) src = converted(src, DType::f32), gd = converted(gd, DType::f32);
  int64_t c = x.shape().back();
  auto md = data_md(src);
  flags f = flags::use_scale | flags::use_shift;
  if (global_stats) f = f | flags::use_global_stats;
  if (workspace.defined()) f = f | flags::fuse_norm_relu;
  auto prim = onednn::cached<dnnl::batch_normalization_backward>(
      op, onednn::KeyBuilder(op).add(md).add(eps).add(int64_t(global_stats)).add(int64_t(workspace.defined())), [&] {
        auto desc = dnnl::batch_normalization_backward::desc(dnnl::prop_kind::backward, md, md, eps, f);
        return dnnl::batch_normalization_backward::primitive_desc(
            desc, onednn::default_attr(), onednn::cpu_engine(), forward_pd(md, eps, f, dnnl::prop_kind::forward_training));
      });
  Tensor dx = Tensor::empty(x.shape(), src.dtype());
  Tensor dgamma = Tensor::empty({c}), dbeta = Tensor::empty({c});
  auto cmd = channel_md(c);
  std::unordered_map<int, dnnl::memory> args{
                  {DNNL_ARG_SRC, onednn::memory_of(src, md)},
                   {DNNL_ARG_DIFF_DST, onednn::memory_of(gd, md)},
                   {DNNL_ARG_MEAN, onednn::memory_of(mean, cmd)},
                   {DNNL_ARG_VARIANCE, onednn::memory_of(var, cmd)},
                   {DNNL_ARG_SCALE, onednn::memory_of(detail::dense(gamma), cmd)},
                   // oneDNN 2.6 checks that the shift is present, though the backward never reads it.
                   {DNNL_ARG_SHIFT, onednn::memory_of(detail::dense(beta), cmd)},
                   {DNNL_ARG_DIFF_SRC, onednn::memory_of(dx, md)},
                   {DNNL_ARG_DIFF_SCALE, onednn::memory_of(dgamma, cmd)},
                   {DNNL_ARG_DIFF_SHIFT, onednn::memory_of(dbeta, cmd)}};
  if (workspace.defined()) {
    args[DNNL_ARG_WORKSPACE] = dnnl::memory(prim.pd.workspace_desc(), onednn::cpu_engine(), workspace.raw_data());
  }
  onednn::execute(op, prim.primitive, args);
  if (via_f32) dx = converted(dx, x.dtype());
  autograd::record_without_second_order(op, {x, grad, gamma}, {dx, dgamma, dbeta});
  return {dx, dgamma, dbeta};
}

// oneDNN's fused ReLU (fuse_norm_relu) is max(y, 0), which turns NaN into 0. Its result is
// kept when no y can be NaN, which per-channel checks show without reading x again:
// statistics and parameters finite, and |gamma| / sqrt(var + eps) * |x - mean| + |beta| far
// below FLT_MAX (no overflow, so no inf - inf or 0 * inf). In training the batch's own
// statistics bound |x - mean| by sqrt(count * var) (oneDNN's variance is the mean of
// (x - mean)^2), and a NaN or inf in x has already made that channel's mean NaN or inf; in
// inference x_abs_max (one scan of x) bounds |x|. Otherwise the caller runs the unfused
// primitive and the NaN-keeping relu().
bool fused_relu_keeps_nan(const Tensor& gamma, const Tensor& beta, const Tensor& mean, const Tensor& var, float eps,
                          bool training, double x_abs_max, int64_t count) {
  if (!training && !std::isfinite(x_abs_max)) return false;
  Tensor gd = detail::dense(gamma), bd = detail::dense(beta), md = detail::dense(mean), vd = detail::dense(var);
  const float *g = gd.data<float>(), *b = bd.data<float>(), *m = md.data<float>(), *v = vd.data<float>();
  for (int64_t c = 0; c < gd.numel(); ++c) {
    double denom = static_cast<double>(v[c]) + eps;
    double centered = training ? 2 * std::sqrt(count * static_cast<double>(v[c])) : x_abs_max + std::fabs(m[c]);
    double bound = std::fabs(g[c]) / std::sqrt(denom) * centered + std::fabs(b[c]);
    if (!std::isfinite(m[c]) || !std::isfinite(v[c]) || !std::isfinite(g[c]) || !std::isfinite(b[c]) ||
        !(denom > 0) || !(bound < 1e37)) {
      return false;
    }
  }
  return true;
}

}  // namespace

BatchNormOutput batch_norm_training(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                                    bool fuse_relu) {
  const char* op = "batch_norm";
  detail::check_floating(x, op);
  if (x.ndim() < 2) throw std::invalid_argument(std::string(op) + ": input needs rank >= 2, got " + x.describe());
  int64_t c = x.shape().back();
  check_param(gamma, c, op, "gamma", x);
  check_param(beta, c, op, "beta", x);
  Tensor src = detail::dense(x);
  const bool via_f32 = bf16_without_jit(src, eps);
  if (via_f32) src = converted(src, DType::f32);
  auto md = data_md(src);
  flags f = flags::use_scale | flags::use_shift;
  if (fuse_relu) f = f | flags::fuse_norm_relu;
  auto prim = onednn::cached<dnnl::batch_normalization_forward>(
      op, onednn::KeyBuilder("bn_train").add(md).add(eps).add(int64_t(fuse_relu)),
      [&] { return forward_pd(md, eps, f, dnnl::prop_kind::forward_training); });
  BatchNormOutput out{Tensor::empty(x.shape(), src.dtype()), Tensor::empty({c}), Tensor::empty({c})};
  auto cmd = channel_md(c);
  Tensor workspace;
  dnnl::memory ws_mem;
  if (fuse_relu) workspace = onednn::buffer_for(prim.pd.workspace_desc(), DType::u8, &ws_mem);
  std::unordered_map<int, dnnl::memory> args{
                  {DNNL_ARG_SRC, onednn::memory_of(src, md)},
                   {DNNL_ARG_DST, onednn::memory_of(out.y, md)},
                   {DNNL_ARG_SCALE, onednn::memory_of(detail::dense(gamma), cmd)},
                   {DNNL_ARG_SHIFT, onednn::memory_of(detail::dense(beta), cmd)},
                   {DNNL_ARG_MEAN, onednn::memory_of(out.batch_mean, cmd)},
                   {DNNL_ARG_VARIANCE, onednn::memory_of(out.batch_variance, cmd)}};
  if (fuse_relu) args[DNNL_ARG_WORKSPACE] = ws_mem;
  onednn::execute(op, prim.primitive, args);
  if (via_f32) out.y = converted(out.y, x.dtype());
  if (fuse_relu && !fused_relu_keeps_nan(gamma, beta, out.batch_mean, out.batch_variance, eps, /*training=*/true, 0,
                                        c > 0 ? x.numel() / c : 0)) {
    BatchNormOutput plain = batch_norm_training(x, gamma, beta, eps, /*fuse_relu=*/false);
    plain.y = relu(plain.y);
    return plain;
  }
  if (autograd::should_record({&x, &gamma, &beta})) {
    Tensor mean = out.batch_mean, var = out.batch_variance;
    ops::Attrs call(op);
    call.set("epsilon", eps).set("relu", fuse_relu);
    autograd::record(call, {x, gamma, beta}, {out.y}, [=](const std::vector<Tensor>& g) {
      return bn_backward(x, g[0], gamma, beta, mean, var, eps, /*global_stats=*/false, workspace);
    });
  }
  return out;
}

Tensor batch_norm_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                            const Tensor& variance, float eps, bool fuse_relu) {
  const char* op = "batch_norm_inference";
  detail::check_floating(x, op);
  if (x.ndim() < 2) throw std::invalid_argument(std::string(op) + ": input needs rank >= 2, got " + x.describe());
  int64_t c = x.shape().back();
  check_param(gamma, c, op, "gamma", x);
  check_param(beta, c, op, "beta", x);
  check_param(mean, c, op, "moving mean", x);
  check_param(variance, c, op, "moving variance", x);
  Tensor src = detail::dense(x);
  if (fuse_relu && !fused_relu_keeps_nan(gamma, beta, mean, variance, eps, /*training=*/false, detail::max_abs(src), 0)) {
    return relu(batch_norm_inference(x, gamma, beta, mean, variance, eps, /*fuse_relu=*/false));
  }
  const bool via_f32 = bf16_without_jit(src, eps);
  if (via_f32) src = converted(src, DType::f32);
  auto md = data_md(src);
  // The fused ReLU's backward needs a workspace, which only forward_training produces.
  bool record = autograd::should_record({&x, &gamma, &beta});
  flags f = flags::use_scale | flags::use_shift | flags::use_global_stats;
  if (fuse_relu) f = f | flags::fuse_norm_relu;
  auto prop = fuse_relu && record ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  auto prim = onednn::cached<dnnl::batch_normalization_forward>(
      op, onednn::KeyBuilder("bn_infer").add(md).add(eps).add(int64_t(fuse_relu)).add(int64_t(prop == dnnl::prop_kind::forward_training)),
      [&] { return forward_pd(md, eps, f, prop); });
  Tensor y = Tensor::empty(x.shape(), src.dtype());
  auto cmd = channel_md(c);
  Tensor m = detail::dense(mean), v = detail::dense(variance);
  Tensor workspace;
  dnnl::memory ws_mem;
  if (fuse_relu && record) workspace = onednn::buffer_for(prim.pd.workspace_desc(), DType::u8, &ws_mem);
  std::unordered_map<int, dnnl::memory> args{
                  {DNNL_ARG_SRC, onednn::memory_of(src, md)},
                   {DNNL_ARG_DST, onednn::memory_of(y, md)},
                   {DNNL_ARG_SCALE, onednn::memory_of(detail::dense(gamma), cmd)},
                   {DNNL_ARG_SHIFT, onednn::memory_of(detail::dense(beta), cmd)},
                   {DNNL_ARG_MEAN, onednn::memory_of(m, cmd)},
                   {DNNL_ARG_VARIANCE, onednn::memory_of(v, cmd)}};
  if (workspace.defined()) args[DNNL_ARG_WORKSPACE] = ws_mem;
  onednn::execute(op, prim.primitive, args);
  if (via_f32) y = converted(y, x.dtype());
  if (record) {
    ops::Attrs call(op);
    call.set("epsilon", eps).set("relu", fuse_relu);
    // The statistics are inputs too (a traced graph needs them) but get no gradient.
    autograd::record(call, {x, gamma, beta, mean, variance}, {y}, [=](const std::vector<Tensor>& g) {
      std::vector<Tensor> grads = bn_backward(x, g[0], gamma, beta, m, v, eps, /*global_stats=*/true, workspace);
      grads.resize(5);
      return grads;
    });
  }
  return y;
}

}  // namespace kiln
