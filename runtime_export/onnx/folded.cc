#include "runtime_export/onnx/folded.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace kiln::runtime_export::onnx_io {

std::string sym_str(const SymInt& d) {
  if (!d.batch) return std::to_string(d.coef);
  return d.coef == 1 ? "N" : std::to_string(d.coef) + "N";
}

std::string sym_str(const std::vector<SymInt>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + sym_str(v[i]);
  return s + "]";
}

bool Folded::has_batch() const {
  for (const SymInt& d : ints) {
    if (d.batch) return true;
  }
  return false;
}

std::vector<int64_t> Folded::static_ints(const std::string& what) const {
  if (real) throw std::invalid_argument(what + " is a floating-point tensor, expected integers");
  std::vector<int64_t> out;
  for (const SymInt& d : ints) {
    if (d.batch) throw std::invalid_argument(what + " " + sym_str(ints) + " depends on the batch size (N)");
    out.push_back(d.coef);
  }
  return out;
}

namespace {

void check_overflow(bool overflow, const std::string& what) {
  if (overflow) throw std::invalid_argument(what + " overflows int64");
}

SymInt normalized(SymInt d) {
  if (d.coef == 0) d.batch = false;
  return d;
}

}  // namespace

// Only what keeps a value of the form c or c x N: sums of like terms, products with at most
// one batch factor, exact divisions. ONNX's integer Div truncates, Mod follows the divisor's sign.
SymInt sym_binary(const std::string& op, SymInt a, SymInt b) {
  const std::string what = op + "(" + sym_str(a) + ", " + sym_str(b) + ")";
  int64_t r = 0;
  if (op == "Add" || op == "Sub") {
    if (a.batch != b.batch && !a.is(0) && !b.is(0)) throw std::invalid_argument(what + " mixes the batch size with a constant");
    bool batch = a.batch || b.batch;
    check_overflow(op == "Add" ? __builtin_add_overflow(a.coef, b.coef, &r) : __builtin_sub_overflow(a.coef, b.coef, &r), what);
    return normalized({r, batch});
  }
  if (op == "Mul") {
    if (a.batch && b.batch) throw std::invalid_argument(what + " is a multiple of N squared");
    check_overflow(__builtin_mul_overflow(a.coef, b.coef, &r), what);
    return normalized({r, a.batch || b.batch});
  }
  if (op == "Div" || op == "Mod") {
    if (b.coef == 0) throw std::invalid_argument(what + " divides by zero");
    if (a.coef == std::numeric_limits<int64_t>::min() && b.coef == -1) throw std::invalid_argument(what + " overflows int64");
    if (op == "Mod") {
      if (a.batch || b.batch) throw std::invalid_argument(what + " depends on the batch size");
      int64_t m = a.coef % b.coef;
      if (m != 0 && ((m < 0) != (b.coef < 0))) m += b.coef;
      return {m, false};
    }
    if (b.batch && !a.batch) throw std::invalid_argument(what + " depends on the batch size");
    if (a.batch && !b.batch && a.coef % b.coef != 0) throw std::invalid_argument(what + " is not a whole multiple of N");
    return normalized({a.coef / b.coef, a.batch && !b.batch});
  }
  if (op == "Max" || op == "Min") {
    if (a.batch || b.batch) {
      if (a == b) return a;
      throw std::invalid_argument(what + " depends on the batch size");
    }
    return {op == "Max" ? std::max(a.coef, b.coef) : std::min(a.coef, b.coef), false};
  }
  if (op == "Equal") {
    if (a == b) return {1, false};
    if (a.batch == b.batch) return {0, false};
    // c x N against a constant k: N >= 1, so unequal whenever k is not a positive multiple of c.
    const SymInt& s = a.batch ? a : b;
    const SymInt& k = a.batch ? b : a;
    if (s.coef > 0 && (k.coef <= 0 || k.coef % s.coef != 0)) return {0, false};
    throw std::invalid_argument(what + " depends on the batch size");
  }
  if (op == "And" || op == "Or") {
    if (a.batch || b.batch) throw std::invalid_argument(what + " of a batch-sized value");
    bool x = a.coef != 0, y = b.coef != 0;
    return {op == "And" ? (x && y) : (x || y), false};
  }
  throw std::invalid_argument(what + ": no folding rule");
}

Shape folded_broadcast(const std::vector<const Folded*>& in) {
  Shape out;
  for (const Folded* f : in) {
    if (f->shape.size() > out.size()) out.insert(out.begin(), f->shape.size() - out.size(), 1);
    for (size_t i = 0; i < f->shape.size(); ++i) {
      int64_t& o = out[out.size() - f->shape.size() + i];
      int64_t d = f->shape[i];
      if (o == 1) o = d;
      else if (d != 1 && d != o) throw std::invalid_argument("shapes " + shape_str(f->shape) + " and " + shape_str(out) + " do not broadcast");
    }
  }
  return out;
}

std::vector<int64_t> broadcast_index(const Shape& out, const Shape& in) {
  int64_t n = 1;
  for (int64_t d : out) n *= d;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  const size_t lead = out.size() - in.size();
  for (int64_t flat = 0; flat < n; ++flat) {
    int64_t rem = flat, src = 0, stride = 1;
    for (size_t i = out.size(); i-- > 0;) {
      int64_t c = rem % out[i];
      rem /= out[i];
      if (i >= lead) {
        int64_t d = in[i - lead];
        if (d != 1) src += c * stride;
        stride *= d;
      }
    }
    idx[flat] = src;
  }
  return idx;
}

namespace {

// Strides of a row-major shape.
std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

// Copies elements of `data` at the given flat indices.
Folded pick(const Folded& data, const Shape& shape, const std::vector<int64_t>& flat) {
  Folded out;
  out.shape = shape;
  out.real = data.real;
  for (int64_t i : flat) {
    if (data.real) out.reals.push_back(data.reals[i]);
    else out.ints.push_back(data.ints[i]);
  }
  return out;
}

int64_t elements(const Shape& s, const std::string& what) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0 || (d != 0 && n > kMaxFoldedElements / d)) {
      throw std::invalid_argument(what + " of shape " + shape_str(s) + " is above the " + std::to_string(kMaxFoldedElements) +
                                  " elements Kiln computes at import time");
    }
    n *= d;
  }
  return n;
}

}  // namespace

Folded folded_gather(const Folded& data, const Folded& indices, int64_t axis) {
  const int r = static_cast<int>(data.shape.size());
  if (axis < -r || axis >= r) throw std::invalid_argument("Gather axis " + std::to_string(axis) + " for rank " + std::to_string(r));
  if (axis < 0) axis += r;
  const std::vector<int64_t> ids = indices.static_ints("Gather indices");
  const int64_t rows = data.shape[axis];
  Shape out(data.shape.begin(), data.shape.begin() + axis);
  out.insert(out.end(), indices.shape.begin(), indices.shape.end());
  out.insert(out.end(), data.shape.begin() + axis + 1, data.shape.end());
  const int64_t n = elements(out, "Gather result");
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= data.shape[i];
  for (int i = axis + 1; i < r; ++i) inner *= data.shape[i];
  std::vector<int64_t> flat;
  flat.reserve(static_cast<size_t>(n));
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t id : ids) {
      if (id < -rows || id >= rows) throw std::invalid_argument("Gather index " + std::to_string(id) + " outside [-" + std::to_string(rows) + ", " + std::to_string(rows) + ")");
      if (id < 0) id += rows;
      for (int64_t i = 0; i < inner; ++i) flat.push_back((o * rows + id) * inner + i);
    }
  }
  return pick(data, out, flat);
}

Folded folded_slice(const Folded& data, const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                    const std::vector<int64_t>& axes, const std::vector<int64_t>& steps) {
  const int r = static_cast<int>(data.shape.size());
  std::vector<int64_t> begin(r, 0), step(r, 1);
  Shape out = data.shape;
  std::vector<bool> seen(r);
  for (size_t k = 0; k < starts.size(); ++k) {
    int64_t a = axes[k];
    if (a < -r || a >= r) throw std::invalid_argument("Slice axis " + std::to_string(a) + " for rank " + std::to_string(r));
    if (a < 0) a += r;
    if (seen[a]) throw std::invalid_argument("Slice repeats axis " + std::to_string(a));
    seen[a] = true;
    const int64_t dim = data.shape[a], s = steps[k];
    if (s == 0) throw std::invalid_argument("Slice step 0");
    // ONNX's clamping: [0, dim] going forward, [-1, dim - 1] going backward.
    auto clamp = [&](int64_t i) {
      if (i < 0) i = i < -dim ? -1 : i + dim;
      return s > 0 ? std::clamp<int64_t>(i, 0, dim) : std::clamp<int64_t>(i, -1, dim - 1);
    };
    const int64_t b = clamp(starts[k]), e = clamp(ends[k]);
    int64_t count = s > 0 ? (e > b ? (e - b - 1) / s + 1 : 0) : (b > e ? (b - e - 1) / (-s) + 1 : 0);
    begin[a] = b;
    step[a] = s;
    out[a] = count;
  }
  const int64_t n = elements(out, "Slice result");
  const std::vector<int64_t> in_st = strides_of(data.shape);
  std::vector<int64_t> flat;
  flat.reserve(static_cast<size_t>(n));
  for (int64_t f = 0; f < n; ++f) {
    int64_t rem = f, src = 0;
    for (int i = r; i-- > 0;) {
      int64_t c = rem % out[i];
      rem /= out[i];
      src += (begin[i] + c * step[i]) * in_st[i];
    }
    flat.push_back(src);
  }
  return pick(data, out, flat);
}

Folded folded_concat(const std::vector<Folded>& in, int64_t axis) {
  const int r = static_cast<int>(in.at(0).shape.size());
  if (axis < -r || axis >= r) throw std::invalid_argument("Concat axis " + std::to_string(axis) + " for rank " + std::to_string(r));
  if (axis < 0) axis += r;
  Folded out;
  out.shape = in[0].shape;
  out.shape[axis] = 0;
  for (const Folded& f : in) {
    if (f.shape.size() != in[0].shape.size() || f.real != in[0].real) throw std::invalid_argument("Concat of " + shape_str(f.shape) + " and " + shape_str(in[0].shape));
    for (int i = 0; i < r; ++i) {
      if (i != axis && f.shape[i] != in[0].shape[i]) throw std::invalid_argument("Concat of " + shape_str(f.shape) + " and " + shape_str(in[0].shape));
    }
    out.shape[axis] += f.shape[axis];
  }
  elements(out.shape, "Concat result");
  out.real = in[0].real;
  int64_t outer = 1;
  for (int i = 0; i < axis; ++i) outer *= out.shape[i];
  for (int64_t o = 0; o < outer; ++o) {
    for (const Folded& f : in) {
      int64_t chunk = 1;
      for (int i = static_cast<int>(axis); i < r; ++i) chunk *= f.shape[i];
      for (int64_t i = 0; i < chunk; ++i) {
        if (f.real) out.reals.push_back(f.reals[o * chunk + i]);
        else out.ints.push_back(f.ints[o * chunk + i]);
      }
    }
  }
  return out;
}

}  // namespace kiln::runtime_export::onnx_io
