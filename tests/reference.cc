#include "tests/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace kiln::ref {
namespace {

std::vector<int64_t> unravel(int64_t i, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = i % shape[d];
    i /= shape[d];
  }
  return idx;
}

int64_t ravel(const std::vector<int64_t>& idx, const Shape& shape) {
  int64_t i = 0;
  for (size_t d = 0; d < shape.size(); ++d) i = i * shape[d] + idx[d];
  return i;
}

// Index into a tensor broadcast to out_shape.
int64_t broadcast_index(const std::vector<int64_t>& out_idx, const Shape& shape) {
  int lead = static_cast<int>(out_idx.size() - shape.size());
  int64_t i = 0;
  for (size_t d = 0; d < shape.size(); ++d) i = i * shape[d] + (shape[d] == 1 ? 0 : out_idx[lead + d]);
  return i;
}

}  // namespace

RefTensor from(const Tensor& t) {
  RefTensor r{t.shape(), {}};
  for (float v : t.to_vector()) r.data.push_back(v);
  return r;
}

Tensor to_tensor(const RefTensor& r, DType dtype) {
  std::vector<float> v(r.data.begin(), r.data.end());
  return Tensor::from_vector(v, r.shape, dtype);
}

RefTensor unary(const RefTensor& x, const std::function<double(double)>& f) {
  RefTensor out{x.shape, x.data};
  for (double& v : out.data) v = f(v);
  return out;
}

RefTensor binary(const RefTensor& a, const RefTensor& b, const std::function<double(double, double)>& f) {
  Shape out_shape = broadcast_shapes(a.shape, b.shape, "ref::binary");
  RefTensor out{out_shape, std::vector<double>(numel(out_shape))};
  for (int64_t i = 0; i < out.size(); ++i) {
    auto idx = unravel(i, out_shape);
    out.data[i] = f(a.data[broadcast_index(idx, a.shape)], b.data[broadcast_index(idx, b.shape)]);
  }
  return out;
}

RefTensor matmul(const RefTensor& a, const RefTensor& b) {
  size_t n = std::max(a.shape.size(), b.shape.size());
  Shape as(n - a.shape.size(), 1), bs(n - b.shape.size(), 1);
  as.insert(as.end(), a.shape.begin(), a.shape.end());
  bs.insert(bs.end(), b.shape.begin(), b.shape.end());
  int64_t m = as[n - 2], k = as[n - 1], nn = bs[n - 1];
  Shape batch_a(as.begin(), as.end() - 2), batch_b(bs.begin(), bs.end() - 2);
  Shape batch = broadcast_shapes(batch_a, batch_b, "ref::matmul");
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(nn);
  RefTensor out{out_shape, std::vector<double>(numel(out_shape), 0.0)};
  int64_t nb = numel(batch);
  for (int64_t bi = 0; bi < nb; ++bi) {
    auto idx = unravel(bi, batch);
    int64_t ia = broadcast_index(idx, batch_a), ib = broadcast_index(idx, batch_b);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < nn; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += a.data[(ia * m + i) * k + p] * b.data[(ib * k + p) * nn + j];
        out.data[(bi * m + i) * nn + j] = s;
      }
  }
  return out;
}

RefTensor linear(const RefTensor& x, const RefTensor& w, const RefTensor* bias, bool relu) {
  int64_t k = w.shape[0], n = w.shape[1];
  RefTensor x2{{x.size() / k, k}, x.data};
  RefTensor out = matmul(x2, w);
  for (int64_t i = 0; i < out.size(); ++i) {
    if (bias) out.data[i] += bias->data[i % n];
    if (relu) out.data[i] = std::max(out.data[i], 0.0);
  }
  out.shape = x.shape;
  out.shape.back() = n;
  return out;
}

namespace {
struct Plan {
  int64_t out, pad;
};
Plan spatial(int64_t in, int64_t k, int64_t s, int64_t d, bool same, const std::array<int64_t, 2>* pads = nullptr) {
  int64_t span = (k - 1) * d + 1;
  if (pads) return {(in + (*pads)[0] + (*pads)[1] - span) / s + 1, (*pads)[0]};
  if (same) {
    int64_t out = (in + s - 1) / s;
    int64_t total = std::max<int64_t>((out - 1) * s + span - in, 0);
    return {out, total / 2};
  }
  return {(in - span) / s + 1, 0};
}
}  // namespace

RefTensor conv2d(const RefTensor& x, const RefTensor& w, const RefTensor* bias, const ConvParams& p) {
  int64_t n = x.shape[0], h = x.shape[1], wd = x.shape[2], c = x.shape[3];
  int64_t kh = w.shape[0], kw = w.shape[1], cg = w.shape[2], o = w.shape[3];
  int64_t og = o / p.groups;
  const std::array<int64_t, 2> pads_h{p.pads[0], p.pads[2]}, pads_w{p.pads[1], p.pads[3]};
  Plan ph = spatial(h, kh, p.strides[0], p.dilation[0], p.same, p.explicit_pads ? &pads_h : nullptr);
  Plan pw = spatial(wd, kw, p.strides[1], p.dilation[1], p.same, p.explicit_pads ? &pads_w : nullptr);
  RefTensor out{{n, ph.out, pw.out, o}, std::vector<double>(n * ph.out * pw.out * o, 0.0)};
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oy = 0; oy < ph.out; ++oy)
      for (int64_t ox = 0; ox < pw.out; ++ox)
        for (int64_t oc = 0; oc < o; ++oc) {
          int64_t g = oc / og;
          double s = bias ? bias->data[oc] : 0.0;
          for (int64_t ky = 0; ky < kh; ++ky)
            for (int64_t kx = 0; kx < kw; ++kx) {
              int64_t iy = oy * p.strides[0] - ph.pad + ky * p.dilation[0];
              int64_t ix = ox * p.strides[1] - pw.pad + kx * p.dilation[1];
              if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
              for (int64_t ic = 0; ic < cg; ++ic) {
                s += x.data[((b * h + iy) * wd + ix) * c + g * cg + ic] * w.data[((ky * kw + kx) * cg + ic) * o + oc];
              }
            }
          out.data[((b * ph.out + oy) * pw.out + ox) * o + oc] = s;
        }
  return out;
}

namespace {
RefTensor pool(const RefTensor& x, const PoolParams& p, bool is_max) {
  int64_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
  const std::array<int64_t, 2> pads_h{p.pads[0], p.pads[2]}, pads_w{p.pads[1], p.pads[3]};
  Plan ph = spatial(h, p.pool[0], p.strides[0], 1, p.same, p.explicit_pads ? &pads_h : nullptr);
  Plan pw = spatial(w, p.pool[1], p.strides[1], 1, p.same, p.explicit_pads ? &pads_w : nullptr);
  RefTensor out{{n, ph.out, pw.out, c}, std::vector<double>(n * ph.out * pw.out * c)};
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oy = 0; oy < ph.out; ++oy)
      for (int64_t ox = 0; ox < pw.out; ++ox)
        for (int64_t ch = 0; ch < c; ++ch) {
          double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
          int64_t count = 0;
          for (int64_t ky = 0; ky < p.pool[0]; ++ky)
            for (int64_t kx = 0; kx < p.pool[1]; ++kx) {
              int64_t iy = oy * p.strides[0] - ph.pad + ky, ix = ox * p.strides[1] - pw.pad + kx;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              double v = x.data[((b * h + iy) * w + ix) * c + ch];
              acc = is_max ? std::max(acc, v) : acc + v;
              count++;
            }
          out.data[((b * ph.out + oy) * pw.out + ox) * c + ch] = is_max ? acc : acc / count;
        }
  return out;
}
}  // namespace

RefTensor max_pool2d(const RefTensor& x, const PoolParams& p) { return pool(x, p, true); }
RefTensor avg_pool2d(const RefTensor& x, const PoolParams& p) { return pool(x, p, false); }

RefTensor batch_norm_training(const RefTensor& x, const RefTensor& gamma, const RefTensor& beta, double eps,
                              RefTensor* mean_out, RefTensor* var_out) {
  int64_t c = x.shape.back(), m = x.size() / c;
  RefTensor mean{{c}, std::vector<double>(c, 0)}, var{{c}, std::vector<double>(c, 0)};
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < c; ++j) mean.data[j] += x.data[i * c + j] / m;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < c; ++j) var.data[j] += std::pow(x.data[i * c + j] - mean.data[j], 2) / m;
  if (mean_out) *mean_out = mean;
  if (var_out) *var_out = var;
  return batch_norm_inference(x, gamma, beta, mean, var, eps);
}

RefTensor batch_norm_inference(const RefTensor& x, const RefTensor& gamma, const RefTensor& beta,
                               const RefTensor& mean, const RefTensor& var, double eps) {
  int64_t c = x.shape.back();
  RefTensor out{x.shape, x.data};
  for (int64_t i = 0; i < out.size(); ++i) {
    int64_t j = i % c;
    out.data[i] = (x.data[i] - mean.data[j]) / std::sqrt(var.data[j] + eps) * gamma.data[j] + beta.data[j];
  }
  return out;
}

RefTensor softmax(const RefTensor& x, int axis, bool log) {
  int nd = static_cast<int>(x.shape.size());
  if (axis < 0) axis += nd;
  int64_t len = x.shape[axis], inner = 1;
  for (int d = axis + 1; d < nd; ++d) inner *= x.shape[d];
  int64_t outer = x.size() / (len * inner);
  RefTensor out{x.shape, x.data};
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t l = 0; l < len; ++l) mx = std::max(mx, x.data[(o * len + l) * inner + i]);
      double sum = 0;
      for (int64_t l = 0; l < len; ++l) sum += std::exp(x.data[(o * len + l) * inner + i] - mx);
      for (int64_t l = 0; l < len; ++l) {
        double v = x.data[(o * len + l) * inner + i] - mx;
        out.data[(o * len + l) * inner + i] = log ? v - std::log(sum) : std::exp(v) / sum;
      }
    }
  return out;
}

RefTensor reduce(const RefTensor& x, const std::vector<int>& axes, bool keepdims, Reduce kind) {
  int nd = static_cast<int>(x.shape.size());
  std::vector<bool> red(nd, axes.empty());
  for (int a : axes) red[a < 0 ? a + nd : a] = true;
  Shape keep = x.shape, out_shape;
  for (int d = 0; d < nd; ++d) {
    if (red[d]) keep[d] = 1;
    if (!red[d]) out_shape.push_back(x.shape[d]);
    else if (keepdims) out_shape.push_back(1);
  }
  int64_t count = x.size() / std::max<int64_t>(numel(keep), 1);
  std::vector<double> acc(numel(keep), kind == Reduce::max ? -std::numeric_limits<double>::infinity() : 0.0);
  for (int64_t i = 0; i < x.size(); ++i) {
    auto idx = unravel(i, x.shape);
    for (int d = 0; d < nd; ++d) if (red[d]) idx[d] = 0;
    double& a = acc[ravel(idx, keep)];
    a = kind == Reduce::max ? std::max(a, x.data[i]) : a + x.data[i];
  }
  if (kind == Reduce::mean) for (double& a : acc) a /= count;
  return {out_shape, acc};
}

RefTensor permute(const RefTensor& x, const std::vector<int>& perm) {
  Shape out_shape;
  for (int p : perm) out_shape.push_back(x.shape[p]);
  RefTensor out{out_shape, std::vector<double>(x.size())};
  for (int64_t i = 0; i < out.size(); ++i) {
    auto oidx = unravel(i, out_shape);
    std::vector<int64_t> iidx(x.shape.size());
    for (size_t d = 0; d < perm.size(); ++d) iidx[perm[d]] = oidx[d];
    out.data[i] = x.data[ravel(iidx, x.shape)];
  }
  return out;
}

RefTensor slice(const RefTensor& x, int axis, int64_t start, int64_t end, int64_t step) {
  Shape out_shape = x.shape;
  out_shape[axis] = (end - start + step - 1) / step;
  RefTensor out{out_shape, std::vector<double>(numel(out_shape))};
  for (int64_t i = 0; i < out.size(); ++i) {
    auto idx = unravel(i, out_shape);
    idx[axis] = start + idx[axis] * step;
    out.data[i] = x.data[ravel(idx, x.shape)];
  }
  return out;
}

RefTensor concat(const std::vector<RefTensor>& xs, int axis) {
  Shape out_shape = xs[0].shape;
  out_shape[axis] = 0;
  for (auto& x : xs) out_shape[axis] += x.shape[axis];
  RefTensor out{out_shape, std::vector<double>(numel(out_shape))};
  for (int64_t i = 0; i < out.size(); ++i) {
    auto idx = unravel(i, out_shape);
    int64_t pos = idx[axis];
    for (auto& x : xs) {
      if (pos < x.shape[axis]) {
        idx[axis] = pos;
        out.data[i] = x.data[ravel(idx, x.shape)];
        break;
      }
      pos -= x.shape[axis];
    }
  }
  return out;
}

double gelu_erf(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

RefTensor attention(const RefTensor& q, const RefTensor& k, const RefTensor& v, const RefTensor* mask, double scale,
                    bool causal, bool boolean_mask) {
  const size_t n = q.shape.size();
  std::vector<int> swap_last(n);
  for (size_t i = 0; i < n; ++i) swap_last[i] = static_cast<int>(i);
  std::swap(swap_last[n - 1], swap_last[n - 2]);
  RefTensor s = unary(matmul(q, permute(k, swap_last)), [scale](double x) { return x * scale; });
  const double inf = std::numeric_limits<double>::infinity();
  if (mask) {
    s = binary(s, *mask, [&](double x, double m) {
      if (boolean_mask) return m > 0.5 ? x : -inf;
      return m == -inf ? -inf : x + m;
    });
  }
  const int64_t tq = s.shape[n - 2], tk = s.shape[n - 1];
  for (int64_t r = 0; r < s.size() / std::max<int64_t>(tk, 1); ++r) {
    double* row = s.data.data() + r * tk;
    if (causal) {
      for (int64_t j = r % tq + 1; j < tk; ++j) row[j] = -inf;
    }
    double mx = -inf;
    for (int64_t j = 0; j < tk; ++j) mx = std::max(mx, row[j]);
    if (mx == -inf) {
      for (int64_t j = 0; j < tk; ++j) row[j] = 0;
      continue;
    }
    double sum = 0;
    for (int64_t j = 0; j < tk; ++j) sum += row[j] = std::exp(row[j] - mx);
    for (int64_t j = 0; j < tk; ++j) row[j] /= sum;
  }
  return matmul(s, v);
}

}  // namespace kiln::ref
