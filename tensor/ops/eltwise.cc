#include "tensor/ops/eltwise.h"

#include <stdexcept>

#include "autograd/recorder.h"
#include "tensor/ops/binary.h"
#include "tensor/ops/common.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"

namespace kiln {
namespace {

struct KindInfo {
  const char* name;
  dnnl::algorithm alg;
};

KindInfo info(EltwiseKind kind) {
  using A = dnnl::algorithm;
  switch (kind) {
    case EltwiseKind::relu: return {"relu", A::eltwise_relu};
    case EltwiseKind::gelu_tanh: return {"gelu_tanh", A::eltwise_gelu_tanh};
    case EltwiseKind::gelu_erf: return {"gelu_erf", A::eltwise_gelu_erf};
    case EltwiseKind::sigmoid: return {"sigmoid", A::eltwise_logistic_use_dst_for_bwd};
    case EltwiseKind::tanh: return {"tanh", A::eltwise_tanh_use_dst_for_bwd};
    case EltwiseKind::exp: return {"exp", A::eltwise_exp_use_dst_for_bwd};
    case EltwiseKind::log: return {"log", A::eltwise_log};
    case EltwiseKind::sqrt: return {"sqrt", A::eltwise_sqrt_use_dst_for_bwd};
    case EltwiseKind::square: return {"square", A::eltwise_square};
    case EltwiseKind::abs: return {"abs", A::eltwise_abs};
    case EltwiseKind::elu: return {"elu", A::eltwise_elu};
    case EltwiseKind::softplus: return {"softplus", A::eltwise_soft_relu};
    case EltwiseKind::swish: return {"swish", A::eltwise_swish};
    case EltwiseKind::linear: return {"linear", A::eltwise_linear};
    case EltwiseKind::clip: return {"clip", A::eltwise_clip_v2};
    case EltwiseKind::pow: return {"pow", A::eltwise_pow};
  }
  throw std::invalid_argument("eltwise: unknown kind");
}

dnnl::eltwise_forward::primitive_desc forward_pd(const KindInfo& k, const dnnl::memory::desc& md, float alpha,
                                                 float beta) {
  return dnnl::eltwise_forward::primitive_desc(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, k.alg, md, alpha, beta),
      onednn::default_attr(), onednn::cpu_engine());
}

}  // namespace

bool eltwise_backward_uses_output(EltwiseKind kind) {
  return kind == EltwiseKind::sigmoid || kind == EltwiseKind::tanh || kind == EltwiseKind::exp ||
         kind == EltwiseKind::sqrt;
}

Tensor eltwise(EltwiseKind kind, const Tensor& x, float alpha, float beta) {
  KindInfo k = info(kind);
  detail::check_floating(x, k.name);
  Tensor src = detail::dense(x);
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  if (x.numel() > 0) {
    auto md = onednn::desc_of(src);
    auto prim = onednn::cached<dnnl::eltwise_forward>(
        k.name, onednn::KeyBuilder("eltwise").add(k.name).add(src).add(alpha).add(beta),
        [&] { return forward_pd(k, md, alpha, beta); });
    onednn::execute(k.name, prim.primitive,
                    {{DNNL_ARG_SRC, onednn::memory_of(src, md)}, {DNNL_ARG_DST, onednn::memory_of(out, md)}});
  }
  if (autograd::should_record({&x})) {
    if (kind == EltwiseKind::linear) {
      autograd::record(k.name, {x}, {out}, [alpha](const std::vector<Tensor>& g) {
        return std::vector<Tensor>{g[0] * alpha};
      });
    } else if (kind == EltwiseKind::pow) {
      // d/dx alpha*x^beta = alpha*beta*x^(beta-1), kept differentiable for higher orders.
      autograd::record(k.name, {x}, {out}, [x, alpha, beta](const std::vector<Tensor>& g) {
        return std::vector<Tensor>{g[0] * eltwise(EltwiseKind::pow, x, alpha * beta, beta - 1.0f)};
      });
    } else {
      Tensor data = eltwise_backward_uses_output(kind) ? out : x;
      autograd::record(k.name, {x}, {out}, [kind, data, alpha, beta](const std::vector<Tensor>& g) {
        return std::vector<Tensor>{eltwise_backward(kind, g[0], data, alpha, beta)};
      });
    }
  }
  return out;
}

Tensor eltwise_backward(EltwiseKind kind, const Tensor& grad, const Tensor& data, float alpha, float beta) {
  KindInfo k = info(kind);
  std::string op = std::string(k.name) + "_backward";
  detail::check_floating(grad, op.c_str());
  detail::check_same_dtype(grad, data, op.c_str());
  if (grad.shape() != data.shape()) {
    throw std::invalid_argument(op + ": gradient " + grad.describe() + " does not match data " + data.describe());
  }
  Tensor g = detail::dense(grad), d = detail::dense(data);
  Tensor out = Tensor::empty(grad.shape(), grad.dtype());
  if (out.numel() == 0) return out;
  auto md = onednn::desc_of(d);
  auto prim = onednn::cached<dnnl::eltwise_backward>(
      op, onednn::KeyBuilder("eltwise_bwd").add(k.name).add(d).add(alpha).add(beta), [&] {
        auto hint = forward_pd(k, md, alpha, beta);
        return dnnl::eltwise_backward::primitive_desc(dnnl::eltwise_backward::desc(k.alg, md, md, alpha, beta),
                                                      onednn::default_attr(), onednn::cpu_engine(), hint);
      });
  int data_arg = eltwise_backward_uses_output(kind) ? DNNL_ARG_DST : DNNL_ARG_SRC;
  onednn::execute(op.c_str(), prim.primitive,
                  {{data_arg, onednn::memory_of(d, md)},
                   {DNNL_ARG_DIFF_DST, onednn::memory_of(g, md)},
                   {DNNL_ARG_DIFF_SRC, onednn::memory_of(out, md)}});
  autograd::record_without_second_order("eltwise_backward", {grad, data}, {out});
  return out;
}

Tensor relu(const Tensor& x) { return eltwise(EltwiseKind::relu, x); }
Tensor leaky_relu(const Tensor& x, float slope) { return eltwise(EltwiseKind::relu, x, slope); }
Tensor gelu(const Tensor& x, bool approximate) {
  return eltwise(approximate ? EltwiseKind::gelu_tanh : EltwiseKind::gelu_erf, x);
}
Tensor sigmoid(const Tensor& x) { return eltwise(EltwiseKind::sigmoid, x); }
Tensor tanh(const Tensor& x) { return eltwise(EltwiseKind::tanh, x); }
Tensor exp(const Tensor& x) { return eltwise(EltwiseKind::exp, x); }
Tensor log(const Tensor& x) { return eltwise(EltwiseKind::log, x); }
Tensor sqrt(const Tensor& x) { return eltwise(EltwiseKind::sqrt, x); }
Tensor square(const Tensor& x) { return eltwise(EltwiseKind::square, x); }
Tensor abs(const Tensor& x) { return eltwise(EltwiseKind::abs, x); }
Tensor elu(const Tensor& x, float alpha) { return eltwise(EltwiseKind::elu, x, alpha); }
Tensor softplus(const Tensor& x) { return eltwise(EltwiseKind::softplus, x); }
Tensor swish(const Tensor& x) { return eltwise(EltwiseKind::swish, x, 1.0f); }
Tensor linear(const Tensor& x, float alpha, float beta) { return eltwise(EltwiseKind::linear, x, alpha, beta); }
Tensor clip(const Tensor& x, float low, float high) {
  if (!(low <= high)) {
    throw std::invalid_argument("clip: low " + std::to_string(low) + " exceeds high " + std::to_string(high));
  }
  return eltwise(EltwiseKind::clip, x, low, high);
}
Tensor pow(const Tensor& x, float exponent) { return eltwise(EltwiseKind::pow, x, 1.0f, exponent); }

}  // namespace kiln
