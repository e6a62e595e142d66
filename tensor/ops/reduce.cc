#include "tensor/ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include <omp.h>

#include "tensor/ops/recorder.h"
#include "tensor/ops/binary.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/common.h"
#include "tensor/ops/eltwise.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/onednn/profiler.h"

namespace kiln {
namespace {

enum class ReduceKind { sum, mean, max };

std::vector<bool> reduced_mask(const Tensor& x, const std::vector<int>& axes, const char* op) {
  std::vector<bool> mask(x.ndim(), axes.empty());
  for (int axis : axes) mask[normalize_axis(axis, x.ndim(), x.shape(), op)] = true;
  return mask;
}

// oneDNN's reduction_max skips NaN and gives -FLT_MAX for a group of -inf only; PyTorch's
// amax gives NaN and -inf. Both need a NaN or an infinity in src, which one scan finds; only
// then is src walked again and the affected outputs rewritten.
void fix_max_nan_and_inf(const Tensor& src, const std::vector<bool>& reduced, Tensor& out) {
  if (std::isfinite(detail::max_abs(src))) return;
  const int nd = src.ndim();
  const DType dt = src.dtype();
  Strides out_strides = contiguous_strides(out.shape());
  std::vector<double> nan_of(out.numel(), 0.0);  // a NaN found in the group, else 0
  std::vector<char> only_neg_inf(out.numel(), 1);
  std::vector<int64_t> idx(nd, 0);
  for (int64_t i = 0; i < src.numel(); ++i) {
    int64_t o = 0;
    for (int d = 0; d < nd; ++d) o += reduced[d] ? 0 : idx[d] * out_strides[d];
    double v = load_element(src.raw_data(), dt, i);
    if (std::isnan(v)) nan_of[o] = v;
    if (v != -INFINITY) only_neg_inf[o] = 0;
    for (int d = nd - 1; d >= 0 && ++idx[d] == src.shape()[d]; --d) idx[d] = 0;
  }
  for (int64_t o = 0; o < out.numel(); ++o) {
    if (std::isnan(nan_of[o])) store_element(out.raw_data(), dt, o, nan_of[o]);
    else if (only_neg_inf[o]) store_element(out.raw_data(), dt, o, -INFINITY);
  }
}

// x seen as [outer, mid, inner] with mid the reduced dims, when those are one contiguous run
// (a bias gradient's batch axis, a row's last axis, everything); false otherwise.
bool collapse(const Tensor& x, const std::vector<bool>& mask, int64_t* outer, int64_t* mid, int64_t* inner) {
  int first = -1, last = -1;
  for (int i = 0; i < x.ndim(); ++i) {
    if (!mask[i] || x.shape()[i] == 1) continue;
    if (first < 0) first = i;
    last = i;
  }
  if (first < 0) return false;
  *outer = *mid = *inner = 1;
  for (int i = 0; i < x.ndim(); ++i) {
    if (i >= first && i <= last) {
      if (!mask[i] && x.shape()[i] != 1) return false;
      *mid *= x.shape()[i];
    } else {
      (i < first ? *outer : *inner) *= x.shape()[i];
    }
  }
  return true;
}

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) { return bf16::to_float(p[i]); }
inline void store(float* p, int64_t i, float v) { p[i] = v; }
inline void store(uint16_t* p, int64_t i, float v) { p[i] = bf16::round_from_float(v); }

// Sums (or averages) x[o, :, i] into out[o, i], accumulating in f32 as oneDNN does. oneDNN
// 2.6 runs reductions over a non-innermost axis with its reference kernel: every bias gradient
// ([N*H*W, C] -> [C]), and the [N, H, W, C] -> [N, 1, 1, C] gradient of a squeeze-excite scale,
// where it took 17 of MobileNetV3Small's 77 ms training step (b32, 2 threads). This is one pass
// over the data, parallel over o where there are enough rows, else over chunks of the middle
// axis with one partial row set per thread.
template <typename T>
void sum_rows(const T* base, int64_t mid, int64_t inner, float* row) {
  if (inner == 1) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t m = 0; m < mid; ++m) s += load(base, m);
    row[0] += s;
    return;
  }
  for (int64_t m = 0; m < mid; ++m) {
#pragma omp simd
    for (int64_t i = 0; i < inner; ++i) row[i] += load(base + m * inner, i);
  }
}

template <typename T>
void sum_kernel(const T* x, T* out, int64_t outer, int64_t mid, int64_t inner, bool mean) {
  const float scale = mean ? 1.f / static_cast<float>(mid) : 1.f;
  const int64_t total = outer * mid * inner;
  const int threads = total > (1 << 16) ? omp_get_max_threads() : 1;
  if (outer >= threads) {
#pragma omp parallel num_threads(threads)
    {
      std::vector<float> row(static_cast<size_t>(inner));
#pragma omp for schedule(static)
      for (int64_t o = 0; o < outer; ++o) {
        std::fill(row.begin(), row.end(), 0.f);
        sum_rows(x + o * mid * inner, mid, inner, row.data());
        for (int64_t i = 0; i < inner; ++i) store(out + o * inner, i, row[i] * scale);
      }
    }
    return;
  }
  // Fewer rows than threads: each thread sums a contiguous share of the middle axis.
  std::vector<float> partial(static_cast<size_t>(threads * outer * inner), 0.f);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t begin = mid * t / team, end = mid * (t + 1) / team;
    for (int64_t o = 0; o < outer; ++o) {
      sum_rows(x + (o * mid + begin) * inner, end - begin, inner, partial.data() + (t * outer + o) * inner);
    }
  }
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      float s = 0;
      for (int t = 0; t < threads; ++t) s += partial[(t * outer + o) * inner + i];
      store(out + o * inner, i, s * scale);
    }
  }
}

// Sets *out (of out_shape) and returns true when the reduced axes are one contiguous run (what
// sum_kernel takes); otherwise oneDNN's reduction runs.
bool kernel_sum(const Tensor& x, const std::vector<bool>& mask, bool mean, const Shape& out_shape, Tensor* out) {
  int64_t outer, mid, inner;
  if (!x.is_contiguous() || !collapse(x, mask, &outer, &mid, &inner)) return false;
  *out = Tensor::empty(out_shape, x.dtype());
  onednn::profiler::KernelScope timed;
  if (x.dtype() == DType::f32) {
    sum_kernel(x.data<float>(), out->data<float>(), outer, mid, inner, mean);
  } else {
    sum_kernel(static_cast<const uint16_t*>(x.raw_data()), static_cast<uint16_t*>(out->raw_data()), outer, mid, inner,
               mean);
  }
  return true;
}

Tensor reduce(ReduceKind kind, const Tensor& x, const std::vector<int>& axes, bool keepdims) {
  const char* op = kind == ReduceKind::sum ? "reduce_sum" : kind == ReduceKind::mean ? "reduce_mean" : "reduce_max";
  detail::check_floating(x, op);
  std::vector<bool> mask = reduced_mask(x, axes, op);
  Shape keep_shape = x.shape(), out_shape;
  int64_t count = 1;
  for (int i = 0; i < x.ndim(); ++i) {
    if (mask[i]) {
      count *= x.shape()[i];
      keep_shape[i] = 1;
      if (keepdims) out_shape.push_back(1);
    } else {
      out_shape.push_back(x.shape()[i]);
    }
  }
  Tensor out, result;
  if (x.numel() == 0) {
    if (kind == ReduceKind::max) throw std::invalid_argument(std::string(op) + ": empty input " + x.describe());
    out = Tensor::full(keep_shape, kind == ReduceKind::sum ? 0.f : std::numeric_limits<float>::quiet_NaN(), x.dtype());
  } else if (count == 1) {
    out = detail::materialize(x).alias(keep_shape, contiguous_strides(keep_shape), 0);
  } else if (kind != ReduceKind::max && kernel_sum(x, mask, kind == ReduceKind::mean, out_shape, &result)) {
    // Our own kernel wrote the result in its final shape (the same bytes as keep_shape's).
  } else {
    Tensor src = detail::dense(x);
    out = Tensor::empty(keep_shape, x.dtype());
    auto src_md = onednn::desc_of(src);
    auto dst_md = onednn::desc_of(out);
    auto alg = kind == ReduceKind::sum    ? dnnl::algorithm::reduction_sum
               : kind == ReduceKind::mean ? dnnl::algorithm::reduction_mean
                                          : dnnl::algorithm::reduction_max;
    auto prim = onednn::cached<dnnl::reduction>(op, onednn::KeyBuilder(op).add(src).add(keep_shape), [&] {
      return dnnl::reduction::primitive_desc(dnnl::reduction::desc(alg, src_md, dst_md, 0.f, 0.f),
                                             onednn::default_attr(), onednn::cpu_engine());
    });
    onednn::execute(op, prim.primitive,
                    {{DNNL_ARG_SRC, onednn::memory_of(src, src_md)}, {DNNL_ARG_DST, onednn::memory_of(out, dst_md)}});
    if (kind == ReduceKind::max) fix_max_nan_and_inf(src, mask, out);
  }
  if (!result.defined()) result = out.alias(out_shape, contiguous_strides(out_shape), out.offset());
  if (autograd::should_record({&x})) {
    Shape in_shape = x.shape();
    auto attrs = [&] {
      ops::Attrs call(op);
      call.set("axes", std::vector<int64_t>(axes.begin(), axes.end())).set("keepdims", keepdims);
      return call;
    };
    if (kind == ReduceKind::max) {
      autograd::record_lazy(op, attrs, {x}, {result}, [=](const std::vector<Tensor>& g) {
        // Split the gradient evenly between tied maxima.
        Tensor gk = reshape(g[0], keep_shape);
        Tensor is_max = equal(x, broadcast_to(reshape(stop_gradient(result), keep_shape), in_shape));
        Tensor ties = reduce_sum(is_max, axes, /*keepdims=*/true);
        return std::vector<Tensor>{broadcast_to(gk / ties, in_shape) * is_max};
      });
    } else {
      // Sum and mean need only shapes: the closure must not keep x alive.
      const bool mean = kind == ReduceKind::mean;
      autograd::record_lazy(op, attrs, {x}, {result}, [keep_shape, in_shape, mean, count](const std::vector<Tensor>& g) {
        Tensor gk = reshape(g[0], keep_shape);
        return std::vector<Tensor>{broadcast_to(mean ? gk * (1.0f / count) : gk, in_shape)};
      });
    }
  }
  return result;
}

}  // namespace

Tensor reduce_sum(const Tensor& x, const std::vector<int>& axes, bool keepdims) {
  return reduce(ReduceKind::sum, x, axes, keepdims);
}
Tensor reduce_mean(const Tensor& x, const std::vector<int>& axes, bool keepdims) {
  return reduce(ReduceKind::mean, x, axes, keepdims);
}
Tensor reduce_max(const Tensor& x, const std::vector<int>& axes, bool keepdims) {
  return reduce(ReduceKind::max, x, axes, keepdims);
}

Tensor sum_to_shape(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  Shape full = broadcast_shapes(shape, x.shape(), "sum_to_shape");
  if (full != x.shape()) {
    throw std::invalid_argument("sum_to_shape: " + x.describe() + " is not a broadcast of " + shape_str(shape));
  }
  std::vector<int> axes;
  int lead = x.ndim() - static_cast<int>(shape.size());
  for (int i = 0; i < x.ndim(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && x.shape()[i] != 1)) axes.push_back(i);
  }
  if (axes.empty()) return reshape(x, shape);
  return reshape(reduce_sum(x, axes, /*keepdims=*/true), shape);
}

Tensor argmax(const Tensor& x, int axis) {
  detail::check_defined(x, "argmax", "input");
  if (x.ndim() == 0) throw std::invalid_argument("argmax: scalar input " + x.describe());
  int a = normalize_axis(axis, x.ndim(), x.shape(), "argmax");
  std::vector<int> perm;
  for (int i = 0; i < x.ndim(); ++i) {
    if (i != a) perm.push_back(i);
  }
  perm.push_back(a);
  Tensor moved = detail::dense(stop_gradient(permute(stop_gradient(x), perm)));
  int64_t inner = moved.shape().back();
  if (inner == 0) throw std::invalid_argument("argmax: empty axis in " + x.describe());
  int64_t rows = moved.numel() / inner;
  Shape out_shape = moved.shape();
  out_shape.pop_back();
  Tensor out = Tensor::empty(out_shape, DType::s32);
  int32_t* o = out.data<int32_t>();
  std::vector<float> v = moved.to_vector();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = v.data() + r * inner;
    o[r] = static_cast<int32_t>(std::max_element(row, row + inner) - row);
  }
  if (autograd::observing()) autograd::observe(ops::Attrs("argmax").set("axis", ops::AttrValue(int64_t{a})), {x}, {out});
  return out;
}

}  // namespace kiln
