#include "tensor/ops/softmax.h"

#include "tensor/ops/recorder.h"
#include "tensor/ops/common.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"

namespace kiln {
namespace {

dnnl::softmax_v2_forward::primitive_desc forward_pd(dnnl::algorithm alg, const dnnl::memory::desc& md, int axis) {
  return dnnl::softmax_v2_forward::primitive_desc(
      dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_training, alg, md, md, axis), onednn::default_attr(),
      onednn::cpu_engine());
}

Tensor softmax_backward(dnnl::algorithm alg, const char* op, const Tensor& grad, const Tensor& y, int axis) {
  Tensor g = detail::dense(grad), d = detail::dense(y);
  Tensor out = Tensor::empty(y.shape(), y.dtype());
  auto md = onednn::desc_of(d);
  auto prim = onednn::cached<dnnl::softmax_v2_backward>(
      op, onednn::KeyBuilder(op).add(d).add(int64_t{axis}), [&] {
        return dnnl::softmax_v2_backward::primitive_desc(
            dnnl::softmax_v2_backward::desc(alg, md, md, md, axis), onednn::default_attr(), onednn::cpu_engine(),
            forward_pd(alg, md, axis));
      });
  onednn::execute(op, prim.primitive,
                  {{DNNL_ARG_DST, onednn::memory_of(d, md)},
                   {DNNL_ARG_DIFF_DST, onednn::memory_of(g, md)},
                   {DNNL_ARG_DIFF_SRC, onednn::memory_of(out, md)}});
  autograd::record_without_second_order(op, {grad, y}, {out});
  return out;
}

Tensor softmax_impl(dnnl::algorithm alg, const char* op, const char* bwd_op, const Tensor& x, int axis) {
  detail::check_floating(x, op);
  if (x.ndim() == 0) throw std::invalid_argument(std::string(op) + ": scalar input " + x.describe());
  int a = normalize_axis(axis, x.ndim(), x.shape(), op);
  Tensor src = detail::dense(x);
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  if (x.numel() == 0) return out;
  auto md = onednn::desc_of(src);
  auto prim = onednn::cached<dnnl::softmax_v2_forward>(op, onednn::KeyBuilder(op).add(src).add(int64_t{a}),
                                                       [&] { return forward_pd(alg, md, a); });
  onednn::execute(op, prim.primitive, {{DNNL_ARG_SRC, onednn::memory_of(src, md)}, {DNNL_ARG_DST, onednn::memory_of(out, md)}});
  if (autograd::should_record({&x})) {
    autograd::record(ops::Attrs(op).set("axis", ops::AttrValue(int64_t{a})), {x}, {out}, [=](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{softmax_backward(alg, bwd_op, g[0], out, a)};
    });
  }
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x, int axis) {
  return softmax_impl(dnnl::algorithm::softmax_accurate, "softmax", "softmax_backward", x, axis);
}

Tensor log_softmax(const Tensor& x, int axis) {
  return softmax_impl(dnnl::algorithm::softmax_log, "log_softmax", "log_softmax_backward", x, axis);
}

}  // namespace kiln
