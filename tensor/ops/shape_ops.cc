#include "tensor/ops/shape_ops.h"

#include <numeric>
#include <stdexcept>

#include "tensor/ops/recorder.h"
#include "tensor/ops/common.h"
#include "tensor/ops/concat_kernel.h"
#include "tensor/ops/reduce.h"

namespace kiln {
namespace {

Shape resolve_shape(const Tensor& x, Shape shape) {
  int infer = -1;
  int64_t known = 1;
  bool overflow = false;
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw std::invalid_argument("reshape: more than one -1 in " + shape_str(shape));
      infer = i;
    } else if (shape[i] < 0) {
      throw std::invalid_argument("reshape: invalid dimension in " + shape_str(shape));
    } else if (shape[i] == 0) {
      known = 0;
    } else if (known != 0 && __builtin_mul_overflow(known, shape[i], &known)) {
      overflow = true;  // more elements than x has, whatever a later zero would make of them
    }
  }
  if (overflow) {
    throw std::invalid_argument("reshape: cannot reshape " + x.describe() + " (" + std::to_string(x.numel()) +
                                " elements) into " + shape_str(shape) + ": its element count overflows int64");
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known != 0) {
      throw std::invalid_argument("reshape: cannot reshape " + x.describe() + " into " + shape_str(shape));
    }
    shape[infer] = x.numel() / known;
  }
  if (numel(shape) != x.numel()) {
    throw std::invalid_argument("reshape: cannot reshape " + x.describe() + " (" + std::to_string(x.numel()) +
                                " elements) into " + shape_str(shape));
  }
  return shape;
}

// Gradient of slice: zeros of the input's shape with the gradient written into the window.
Tensor slice_backward(const Tensor& g, const Shape& input_shape, int axis, int64_t start, int64_t step) {
  Tensor out = Tensor::zeros(input_shape, g.dtype());
  Strides strides = out.strides();
  int64_t offset = start * strides[axis];
  strides[axis] *= step;
  out.alias(g.shape(), strides, offset).copy_from(g);
  if (autograd::should_record({&g})) {
    int64_t end = start + step * (g.shape()[axis] - 1) + 1;
    autograd::record("slice_backward", {g}, {out}, [=](const std::vector<Tensor>& gg) {
      return std::vector<Tensor>{slice(gg[0], axis, start, end, step)};
    });
  }
  return out;
}

}  // namespace

Tensor reshape(const Tensor& x, Shape shape) {
  detail::check_defined(x, "reshape", "input");
  shape = resolve_shape(x, std::move(shape));
  Tensor base = x.is_contiguous() ? x : detail::dense(x);
  Tensor out = base.alias(shape, contiguous_strides(shape), base.offset());
  if (autograd::should_record({&x})) {
    Shape in_shape = x.shape();
    autograd::record_lazy("reshape", [&] { return ops::Attrs("reshape").set("shape", std::vector<int64_t>(shape)); }, {x}, {out}, [in_shape](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{reshape(g[0], in_shape)};
    });
  }
  return out;
}

Tensor flatten(const Tensor& x, int start_axis) {
  detail::check_defined(x, "flatten", "input");
  if (x.ndim() == 0) return reshape(x, {1});
  int a = normalize_axis(start_axis, x.ndim(), x.shape(), "flatten");
  Shape s(x.shape().begin(), x.shape().begin() + a);
  s.push_back(-1);
  return reshape(x, s);
}

Tensor permute(const Tensor& x, const std::vector<int>& perm) {
  // Views need strides: a packed tensor (kiln::optimize) is viewed through a row-major copy.
  Tensor row_major = x.defined() && x.is_packed() ? x.plain() : x;
  detail::check_defined(x, "permute", "input");
  if (static_cast<int>(perm.size()) != x.ndim()) {
    throw std::invalid_argument("permute: permutation of length " + std::to_string(perm.size()) +
                                " for tensor " + x.describe());
  }
  if (perm.size() > 64) throw std::invalid_argument("permute: rank above 64 for " + x.describe());
  // The backward of every linear and matmul transposes: the view's geometry is built in
  // per-thread buffers (alias copies it), not in fresh vectors.
  int p[64];
  uint64_t seen = 0;  // a bit per axis
  thread_local Shape shape;
  thread_local Strides strides;
  shape.resize(perm.size());
  strides.resize(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    p[i] = normalize_axis(perm[i], x.ndim(), x.shape(), "permute");
    if (seen >> p[i] & 1) throw std::invalid_argument("permute: repeated axis in permutation for " + x.describe());
    seen |= uint64_t{1} << p[i];
    shape[i] = x.shape()[p[i]];
    strides[i] = row_major.strides()[p[i]];
  }
  Tensor out = row_major.alias(shape, strides, row_major.offset());
  if (autograd::should_record({&x})) {
    const size_t n = shape.size();
    std::vector<int> inverse(n);
    for (size_t i = 0; i < n; ++i) inverse[p[i]] = static_cast<int>(i);
    autograd::record_lazy("permute", [&] { return ops::Attrs("permute").set("perm", std::vector<int64_t>(p, p + n)); }, {x}, {out}, [inverse](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{permute(g[0], inverse)};
    });
  }
  return out;
}

Tensor transpose(const Tensor& x, int axis_a, int axis_b) {
  detail::check_defined(x, "transpose", "input");
  thread_local std::vector<int> perm;  // permute copies it before anything can reenter
  perm.resize(x.ndim());
  std::iota(perm.begin(), perm.end(), 0);
  int a = normalize_axis(axis_a, x.ndim(), x.shape(), "transpose");
  int b = normalize_axis(axis_b, x.ndim(), x.shape(), "transpose");
  std::swap(perm[a], perm[b]);
  return permute(x, perm);
}

Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end, int64_t step) {
  detail::check_defined(x, "slice", "input");
  int a = normalize_axis(axis, x.ndim(), x.shape(), "slice");
  int64_t n = x.shape()[a];
  if (step <= 0) throw std::invalid_argument("slice: step must be positive, got " + std::to_string(step));
  if (start < 0) start += n;
  if (end < 0) end += n;
  end = std::min(end, n);
  if (start < 0 || start > n || end < start) {
    throw std::out_of_range("slice: range [" + std::to_string(start) + ", " + std::to_string(end) +
                            ") is invalid for axis " + std::to_string(axis) + " of " + x.describe());
  }
  Tensor row_major = x.is_packed() ? x.plain() : x;
  Shape shape = x.shape();
  Strides strides = row_major.strides();
  shape[a] = (end - start) / step + ((end - start) % step != 0);  // no end + step: step may be near 2^63
  int64_t offset = row_major.offset() + start * strides[a];
  // With two or more elements taken, step < n, so the product fits like the input's extent.
  if (shape[a] > 1) strides[a] *= step;
  Tensor out = row_major.alias(shape, strides, offset);
  if (autograd::should_record({&x})) {
    Shape in_shape = x.shape();
    auto attrs = [&] {
      ops::Attrs call("slice");
      call.set("axis", ops::AttrValue(int64_t{a})).set("start", ops::AttrValue(start)).set("end", ops::AttrValue(end));
      call.set("step", ops::AttrValue(step));
      return call;
    };
    autograd::record_lazy("slice", attrs, {x}, {out}, [=](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{slice_backward(g[0], in_shape, a, start, step)};
    });
  }
  return out;
}

Tensor squeeze(const Tensor& x, int axis) {
  detail::check_defined(x, "squeeze", "input");
  int a = normalize_axis(axis, x.ndim(), x.shape(), "squeeze");
  if (x.shape()[a] != 1) {
    throw std::invalid_argument("squeeze: axis " + std::to_string(axis) + " of " + x.describe() + " is not 1");
  }
  Shape s = x.shape();
  s.erase(s.begin() + a);
  return reshape(x, s);
}

Tensor expand_dims(const Tensor& x, int axis) {
  detail::check_defined(x, "expand_dims", "input");
  int a = normalize_axis(axis, x.ndim() + 1, x.shape(), "expand_dims");
  Shape s = x.shape();
  s.insert(s.begin() + a, 1);
  return reshape(x, s);
}

Tensor contiguous(const Tensor& x) {
  detail::check_defined(x, "contiguous", "input");
  if (x.is_contiguous()) return x;
  Tensor out = detail::dense(x);
  if (autograd::should_record({&x})) {
    autograd::record("contiguous", {x}, {out}, [](const std::vector<Tensor>& g) { return g; });
  }
  return out;
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  detail::check_defined(x, "broadcast_to", "input");
  if (x.shape() == shape) return x;
  checked_nbytes(shape, dtype_size(x.dtype()), "broadcast_to: target");
  Shape full = broadcast_shapes(x.shape(), shape, "broadcast_to");
  if (full != shape) {
    throw std::invalid_argument("broadcast_to: cannot broadcast " + x.describe() + " to " + shape_str(shape));
  }
  Tensor row_major = x.is_packed() ? x.plain() : x;
  Strides strides(shape.size(), 0);
  int lead = static_cast<int>(shape.size()) - x.ndim();
  for (int i = 0; i < x.ndim(); ++i) strides[lead + i] = x.shape()[i] == 1 ? 0 : row_major.strides()[i];
  Tensor out = detail::materialize(row_major.alias(shape, strides, row_major.offset()));
  if (autograd::should_record({&x})) {
    Shape in_shape = x.shape();
    autograd::record_lazy("broadcast_to", [&] { return ops::Attrs("broadcast_to").set("shape", std::vector<int64_t>(shape)); }, {x}, {out}, [in_shape](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{sum_to_shape(g[0], in_shape)};
    });
  }
  return out;
}

Tensor concat(const std::vector<Tensor>& xs, int axis) {
  if (xs.empty()) throw std::invalid_argument("concat: no tensors given");
  for (const Tensor& t : xs) detail::check_defined(t, "concat", "input");
  const Tensor& first = xs[0];
  if (first.ndim() == 0) throw std::invalid_argument("concat: cannot concatenate scalars");
  int a = normalize_axis(axis, first.ndim(), first.shape(), "concat");
  Shape out_shape = first.shape();
  out_shape[a] = 0;
  std::vector<Tensor> dense_inputs;
  dense_inputs.reserve(xs.size());
  for (const Tensor& t : xs) {
    detail::check_same_dtype(first, t, "concat");
    Shape s = t.shape();
    if (t.ndim() != first.ndim()) {
      throw std::invalid_argument("concat: ranks differ: " + first.describe() + " vs " + t.describe());
    }
    for (int i = 0; i < t.ndim(); ++i) {
      if (i != a && s[i] != first.shape()[i]) {
        throw std::invalid_argument("concat: shapes " + first.describe() + " and " + t.describe() +
                                    " differ outside axis " + std::to_string(axis));
      }
    }
    out_shape[a] += s[a];
    dense_inputs.push_back(detail::dense(t));
  }
  Tensor out = Tensor::empty(out_shape, first.dtype());
  detail::concat_into(out, dense_inputs, a);
  if (autograd::should_record(xs)) {
    std::vector<int64_t> sizes;
    for (const Tensor& t : xs) sizes.push_back(t.shape()[a]);
    autograd::record(ops::Attrs("concat").set("axis", ops::AttrValue(int64_t{a})), xs, {out}, [a, sizes](const std::vector<Tensor>& g) {
      std::vector<Tensor> grads;
      int64_t start = 0;
      for (int64_t s : sizes) {
        grads.push_back(slice(g[0], a, start, start + s));
        start += s;
      }
      return grads;
    });
  }
  return out;
}

Tensor stop_gradient(const Tensor& x) {
  detail::check_defined(x, "stop_gradient", "input");
  Tensor out = x.alias(x.shape(), x.strides(), x.offset());
  // No gradient, but a traced graph needs the edge. Checked first: matmul and linear call this
  // for every operand, and the attributes and lists would be built for nobody.
  if (autograd::observing()) autograd::observe(ops::Attrs("identity"), {x}, {out});
  return out;
}

}  // namespace kiln
