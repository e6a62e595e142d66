#include "tensor/ops/softmax.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/ops/recorder.h"
#include "tensor/ops/common.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/onednn/profiler.h"

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
  if (autograd::should_record({&grad, &y})) autograd::record_without_second_order(op, {grad, y}, {out});
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
    autograd::record_lazy(op, [&] { return ops::Attrs(op).set("axis", ops::AttrValue(int64_t{a})); }, {x}, {out}, [=](const std::vector<Tensor>& g) {
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

namespace {

// Row r's label, checked against the class count as one_hot checks it.
std::vector<int32_t> checked_labels(const Tensor& labels, int64_t classes, const char* op) {
  std::vector<int32_t> ids = labels.to_int32();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= classes) {
      throw std::out_of_range(std::string(op) + ": label " + std::to_string(ids[i]) + " at position " +
                              std::to_string(i) + " is outside [0, " + std::to_string(classes) + ") for labels " +
                              labels.describe());
    }
  }
  return ids;
}

// logp[c] = (z[c] - max) - log(sum exp(z - max)), oneDNN's softmax_log formula; p[c] gets
// softmax, exp(z[c] - max) / sum, for the backward.
void log_softmax_row(const float* z, float* logp, float* p, int64_t classes) {
  float m = z[0];
  for (int64_t c = 1; c < classes; ++c) m = z[c] > m || z[c] != z[c] ? z[c] : m;
  float sum = 0;
  for (int64_t c = 0; c < classes; ++c) sum += p[c] = std::exp(z[c] - m);
  const float log_sum = std::log(sum), inv_sum = 1.0f / sum;
  for (int64_t c = 0; c < classes; ++c) {
    logp[c] = (z[c] - m) - log_sum;
    p[c] *= inv_sum;
  }
}

// d logits = dlogp - softmax * sum(dlogp), with dlogp = -(g / batch) * one_hot: the backward
// of the composite, term for term (a NaN or inf anywhere spreads as it did there).
Tensor sparse_softmax_cross_entropy_backward(const Tensor& g, const Tensor& probs, const std::vector<int32_t>& ids) {
  const int64_t batch = probs.shape()[0], classes = probs.shape()[1];
  Tensor out = Tensor::empty(probs.shape(), DType::f32);
  const float u = g.item() * (1.0f / static_cast<float>(batch));
  const float* p = probs.data<float>();
  float* dz = out.data<float>();
  onednn::profiler::KernelScope timed;
  for (int64_t r = 0; r < batch; ++r) {
    float sum_d = 0;
    for (int64_t c = 0; c < classes; ++c) sum_d += -(u * (c == ids[r] ? 1.f : 0.f));
    for (int64_t c = 0; c < classes; ++c) {
      dz[r * classes + c] = -(u * (c == ids[r] ? 1.f : 0.f)) - p[r * classes + c] * sum_d;
    }
  }
  return out;
}

}  // namespace

Tensor sparse_softmax_cross_entropy(const Tensor& logits, const Tensor& labels) {
  const char* op = "sparse_softmax_cross_entropy";
  detail::check_rank(logits, 2, op, "logits");
  logits.check_dtype(DType::f32, op);
  detail::check_rank(labels, 1, op, "labels");
  if (is_floating(labels.dtype())) throw std::invalid_argument(std::string(op) + ": labels must be integers, got " + labels.describe());
  const int64_t batch = logits.shape()[0], classes = logits.shape()[1];
  if (labels.shape()[0] != batch || classes == 0) {
    throw std::invalid_argument(std::string(op) + ": labels " + labels.describe() + " do not match logits " +
                                logits.describe());
  }
  std::vector<int32_t> ids = checked_labels(labels, classes, op);
  Tensor z = detail::dense(logits);
  Tensor loss = Tensor::empty({}, DType::f32);
  Tensor probs = Tensor::empty(z.shape(), DType::f32);  // softmax, kept for the backward
  {
    onednn::profiler::KernelScope timed;
    const float* zp = z.data<float>();
    float* pp = probs.data<float>();
    std::vector<float> logp(classes);
    float total = 0;
    for (int64_t r = 0; r < batch; ++r) {
      log_softmax_row(zp + r * classes, logp.data(), pp + r * classes, classes);
      float s = 0;  // sum of one_hot * logp, zeros times logp included (0 * -inf is NaN there too)
      for (int64_t c = 0; c < classes; ++c) s += (c == ids[r] ? 1.f : 0.f) * logp[c];
      total += -s;
    }
    *loss.data<float>() = batch > 0 ? total / static_cast<float>(batch) : std::numeric_limits<float>::quiet_NaN();
  }
  if (autograd::should_record({&logits})) {
    // Recorded against the logits, so that an outer tape differentiating this gradient again
    // gets a clear error (as from log_softmax's backward in the composite), not a silent zero.
    autograd::record(op, {logits, labels}, {loss}, [logits, probs, ids = std::move(ids)](const std::vector<Tensor>& g) {
      Tensor dz = sparse_softmax_cross_entropy_backward(g[0], probs, ids);
      if (autograd::should_record({&g[0], &logits})) {
        autograd::record_without_second_order("sparse_softmax_cross_entropy_backward", {g[0], logits}, {dz});
      }
      return std::vector<Tensor>{dz, Tensor()};
    });
  }
  return loss;
}

}  // namespace kiln
