#include "tensor/ops/pad.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "tensor/onednn/profiler.h"
#include "tensor/ops/common.h"
#include "tensor/ops/recorder.h"

namespace kiln {

PadMode pad_mode_from_name(const std::string& name) {
  if (name == "constant") return PadMode::constant;
  if (name == "reflect") return PadMode::reflect;
  if (name == "edge") return PadMode::edge;
  throw std::invalid_argument("unknown pad mode '" + name + "' (expected 'constant', 'reflect' or 'edge')");
}

const char* pad_mode_name(PadMode mode) {
  switch (mode) {
    case PadMode::constant: return "constant";
    case PadMode::reflect: return "reflect";
    case PadMode::edge: return "edge";
  }
  return "?";
}

namespace {

constexpr int64_t kParallelBytes = int64_t{1} << 17;

std::string pads_str(const PadAttrs& a) {
  std::string s = "[";
  for (size_t i = 0; i < a.before.size() || i < a.after.size(); ++i) {
    s += i ? ", (" : "(";
    s += i < a.before.size() ? std::to_string(a.before[i]) : "?";
    s += ", ";
    s += i < a.after.size() ? std::to_string(a.after[i]) : "?";
    s += ")";
  }
  return s + "]";
}

// The input element that output element o reads along an axis of n, or -1 for the fill value.
int64_t source_index(int64_t o, int64_t before, int64_t n, PadMode mode) {
  const int64_t i = o - before;
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PadMode::constant: return -1;
    case PadMode::edge: return i < 0 ? 0 : n - 1;
    case PadMode::reflect: {
      if (n == 1) return 0;
      const int64_t period = 2 * (n - 1);
      int64_t m = i % period;
      if (m < 0) m += period;
      return m < n ? m : period - m;
    }
  }
  return -1;
}

std::vector<int64_t> axis_map(int64_t out, int64_t before, int64_t n, PadMode mode) {
  std::vector<int64_t> m(out);
  for (int64_t o = 0; o < out; ++o) m[o] = source_index(o, before, n, mode);
  return m;
}

// The fill value as one element of dtype.
std::vector<char> fill_element(DType dtype, double value) {
  std::vector<char> e(dtype_size(dtype));
  store_element(e.data(), dtype, 0, value);
  return e;
}

// out (contiguous, padded) from src (contiguous): a row of the last axis at a time.
void pad_forward_kernel(const Tensor& src, const Tensor& out, const PadAttrs& a) {
  const int r = src.ndim();
  const size_t es = dtype_size(src.dtype());
  const char* in = static_cast<const char*>(src.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  const std::vector<char> fill = fill_element(src.dtype(), a.value);
  if (r == 0) {
    std::memcpy(dst, in, es);
    return;
  }
  const Shape& is = src.shape();
  const Shape& os = out.shape();
  std::vector<std::vector<int64_t>> maps(r);
  for (int d = 0; d < r; ++d) maps[d] = axis_map(os[d], a.before[d], is[d], a.mode);
  const int64_t row_out = os[r - 1], row_in = is[r - 1];
  int64_t rows = 1;
  for (int d = 0; d + 1 < r; ++d) rows *= os[d];
  // Along the last axis, [lo, hi) copies input [lo - before, hi - before) as one block.
  const int64_t lo = std::clamp<int64_t>(a.before[r - 1], 0, row_out);
  const int64_t hi = std::clamp<int64_t>(a.before[r - 1] + row_in, lo, row_out);
  const std::vector<int64_t>& last = maps[r - 1];
  auto one_row = [&](int64_t row) {
    char* o = dst + row * row_out * es;
    // The source row: the input coordinate of each outer axis, or none (a fill row).
    int64_t src_row = 0, stride = 1, rest = row;
    bool filled = false;
    for (int d = r - 2; d >= 0; --d) {
      const int64_t c = rest % os[d];
      rest /= os[d];
      const int64_t s = maps[d][c];
      if (s < 0) {
        filled = true;
        break;
      }
      src_row += s * stride;
      stride *= is[d];
    }
    if (filled) {
      for (int64_t j = 0; j < row_out; ++j) std::memcpy(o + j * es, fill.data(), es);
      return;
    }
    const char* s = in + src_row * row_in * es;
    for (int64_t j = 0; j < lo; ++j) std::memcpy(o + j * es, last[j] < 0 ? fill.data() : s + last[j] * es, es);
    if (hi > lo) std::memcpy(o + lo * es, s + (lo - a.before[r - 1]) * es, (hi - lo) * es);
    for (int64_t j = hi; j < row_out; ++j) std::memcpy(o + j * es, last[j] < 0 ? fill.data() : s + last[j] * es, es);
  };
  onednn::profiler::KernelScope timed;
  if (rows * row_out * static_cast<int64_t>(es) < kParallelBytes) {
    for (int64_t row = 0; row < rows; ++row) one_row(row);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) one_row(row);
}

template <typename T>
std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> v(t.numel());
  const T* p = static_cast<const T*>(t.raw_data());
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = static_cast<float>(p[i]);
  return v;
}

// The adjoint of reflect or edge padding: every output element's gradient added into the input
// element it copied, one axis at a time (the index maps are per axis), in f32.
Tensor pad_adjoint(const Tensor& grad, const Shape& in_shape, const PadAttrs& a) {
  Tensor g = detail::dense(grad);
  std::vector<float> cur = g.dtype() == DType::f32 ? to_f32<float>(g) : to_f32<bf16>(g);
  Shape shape = g.shape();
  const int r = static_cast<int>(shape.size());
  onednn::profiler::KernelScope timed;
  for (int d = 0; d < r; ++d) {
    if (shape[d] == in_shape[d] && a.before[d] == 0) continue;
    const std::vector<int64_t> map = axis_map(shape[d], a.before[d], in_shape[d], a.mode);
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < d; ++k) outer *= shape[k];
    for (int k = d + 1; k < r; ++k) inner *= shape[k];
    const int64_t m = shape[d], n = in_shape[d];
    std::vector<float> next(static_cast<size_t>(outer * n * inner), 0.f);
#pragma omp parallel for schedule(static) if (outer * m * inner > (int64_t{1} << 15))
    for (int64_t i = 0; i < outer; ++i) {
      for (int64_t o = 0; o < m; ++o) {
        if (map[o] < 0) continue;
        const float* s = cur.data() + (i * m + o) * inner;
        float* t = next.data() + (i * n + map[o]) * inner;
        for (int64_t j = 0; j < inner; ++j) t[j] += s[j];
      }
    }
    cur = std::move(next);
    shape[d] = n;
  }
  Tensor dx = Tensor::empty(in_shape, grad.dtype());
  if (grad.dtype() == DType::f32) {
    std::memcpy(dx.raw_data(), cur.data(), cur.size() * sizeof(float));
  } else {
    bf16* p = static_cast<bf16*>(dx.raw_data());
    for (size_t i = 0; i < cur.size(); ++i) p[i] = bf16(cur[i]);
  }
  if (autograd::should_record({&grad})) {
    // The adjoint of this adjoint is the padding itself.
    autograd::record("pad_backward", {grad}, {dx}, [a](const std::vector<Tensor>& gg) {
      return std::vector<Tensor>{pad(gg[0], a)};
    });
  }
  return dx;
}

PadAttrs negated(const PadAttrs& a) {
  PadAttrs n{a.before, a.after, PadMode::constant, 0};
  for (int64_t& p : n.before) p = -p;
  for (int64_t& p : n.after) p = -p;
  return n;
}

}  // namespace

Shape padded_shape(const Shape& in, DType dtype, const PadAttrs& a, const std::string& input) {
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument("pad: " + what + " (input " + input + ", pads (before, after) " + pads_str(a) + ", mode " +
                                pad_mode_name(a.mode) + ")");
  };
  const size_t r = in.size();
  if (a.before.size() != r || a.after.size() != r) {
    fail(std::to_string(a.before.size()) + " before and " + std::to_string(a.after.size()) +
         " after amounts for rank " + std::to_string(r) + ", expected one of each per axis");
  }
  Shape out = in;
  for (size_t d = 0; d < r; ++d) {
    if (__builtin_add_overflow(in[d], a.before[d], &out[d]) || __builtin_add_overflow(out[d], a.after[d], &out[d])) {
      fail("the size of axis " + std::to_string(d) + " overflows");
    }
    if (out[d] < 0) {
      fail("axis " + std::to_string(d) + " of size " + std::to_string(in[d]) + " would have " + std::to_string(out[d]) +
           " elements (negative pads crop, at most the whole axis)");
    }
    if (a.mode != PadMode::constant && in[d] == 0 && out[d] > 0) {
      fail(std::string("cannot ") + (a.mode == PadMode::reflect ? "reflect" : "extend the edge of") + " the empty axis " +
           std::to_string(d));
    }
  }
  if (!std::isfinite(a.value) || std::fabs(a.value) > 3.4028234663852886e38) {
    fail("the value " + std::to_string(a.value) + " is not a finite float");
  }
  if (a.mode == PadMode::constant && !is_floating(dtype)) {
    double lo = dtype == DType::u8 ? 0 : dtype == DType::s8 ? -128 : -2147483648.0;
    double hi = dtype == DType::u8 ? 255 : dtype == DType::s8 ? 127 : 2147483647.0;
    if (!(a.value >= lo && a.value <= hi) || std::nearbyint(a.value) != a.value) {
      fail("the value " + std::to_string(a.value) + " is not a " + dtype_name(dtype) + " integer");
    }
  }
  checked_nbytes(out, dtype_size(dtype), "pad: output of input " + input);
  return out;
}

Tensor pad(const Tensor& x, const PadAttrs& a) {
  detail::check_defined(x, "pad", "input");
  Shape out_shape = padded_shape(x.shape(), x.dtype(), a, x.describe());
  Tensor out = Tensor::empty(out_shape, x.dtype());
  if (out.numel() > 0) pad_forward_kernel(detail::dense(x), out, a);
  if (autograd::should_record({&x})) {
    Shape in_shape = x.shape();
    autograd::record(to_attrs(a), {x}, {out}, [a, in_shape](const std::vector<Tensor>& g) {
      if (a.mode == PadMode::constant) return std::vector<Tensor>{pad(g[0], negated(a))};
      return std::vector<Tensor>{pad_adjoint(g[0], in_shape, a)};
    });
  }
  return out;
}

}  // namespace kiln
