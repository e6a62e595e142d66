#include "tests/upsampling_reference.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace kiln::ref {
namespace {

// Keras's _convert_conv_transpose_padding_args_from_keras_to_jax.
std::array<int64_t, 2> jax_padding(int64_t kernel, int64_t stride, int64_t dilation, bool same, int64_t output_padding) {
  const int64_t k = (kernel - 1) * dilation + 1;
  if (!same) {
    int64_t op = output_padding < 0 ? std::max(k, stride) - k : output_padding;
    return {k - 1, k - 1 + op};
  }
  int64_t pad_len = output_padding < 0 ? stride + k - 2 : k + k % 2 - 2 + output_padding;
  int64_t left = std::min(pad_len / 2 + pad_len % 2, k - 1);
  return {left, pad_len - left};
}

}  // namespace

RefTensor conv_transpose2d(const RefTensor& x, const RefTensor& w, const RefTensor* bias, const ConvTransposeParams& p) {
  const int64_t n = x.shape[0], h = x.shape[1], wd = x.shape[2], c = x.shape[3];
  const int64_t kh = w.shape[0], kw = w.shape[1], o = w.shape[2];
  if (w.shape[3] != c) throw std::invalid_argument("ref::conv_transpose2d: channels");
  auto ph = jax_padding(kh, p.strides[0], p.dilation[0], p.same, p.output_padding[0]);
  auto pw = jax_padding(kw, p.strides[1], p.dilation[1], p.same, p.output_padding[1]);
  // The stride-dilated input has (in - 1) * s + 1 positions; padded and correlated with a
  // kernel spanning (k - 1) * d + 1.
  const int64_t dh = (h - 1) * p.strides[0] + 1, dw = (wd - 1) * p.strides[1] + 1;
  const int64_t span_h = (kh - 1) * p.dilation[0] + 1, span_w = (kw - 1) * p.dilation[1] + 1;
  const int64_t oh = dh + ph[0] + ph[1] - span_h + 1, ow = dw + pw[0] + pw[1] - span_w + 1;
  RefTensor y{{n, oh, ow, o}, std::vector<double>(static_cast<size_t>(n * oh * ow * o), 0.0)};
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t y0 = 0; y0 < oh; ++y0) {
      for (int64_t x0 = 0; x0 < ow; ++x0) {
        for (int64_t f = 0; f < o; ++f) {
          double acc = bias ? bias->data[f] : 0.0;
          for (int64_t i = 0; i < kh; ++i) {
            const int64_t di = y0 + i * p.dilation[0] - ph[0];  // position in the dilated input
            if (di < 0 || di >= dh || di % p.strides[0] != 0) continue;
            for (int64_t j = 0; j < kw; ++j) {
              const int64_t dj = x0 + j * p.dilation[1] - pw[0];
              if (dj < 0 || dj >= dw || dj % p.strides[1] != 0) continue;
              const int64_t si = di / p.strides[0], sj = dj / p.strides[1];
              for (int64_t ch = 0; ch < c; ++ch) {
                // transpose_kernel=True: flipped spatially, [.., O, C] read as (out f, in ch).
                double wv = w.data[(((kh - 1 - i) * kw + (kw - 1 - j)) * o + f) * c + ch];
                acc += x.data[((b * h + si) * wd + sj) * c + ch] * wv;
              }
            }
          }
          y.data[((b * oh + y0) * ow + x0) * o + f] = acc;
        }
      }
    }
  }
  return y;
}

namespace {

// jax.image.compute_weight_mat for the triangle kernel, antialias=False: weight[in][out].
std::vector<std::vector<double>> bilinear_weights(int64_t in, int64_t out) {
  const double scale = static_cast<double>(out) / static_cast<double>(in);
  std::vector<std::vector<double>> wm(in, std::vector<double>(out, 0.0));
  for (int64_t o = 0; o < out; ++o) {
    const double sample = (o + 0.5) / scale - 0.5;
    double total = 0;
    for (int64_t i = 0; i < in; ++i) {
      wm[i][o] = std::max(0.0, 1.0 - std::fabs(sample - static_cast<double>(i)));
      total += wm[i][o];
    }
    const bool inside = sample >= -0.5 && sample <= in - 0.5;
    for (int64_t i = 0; i < in; ++i) wm[i][o] = inside && total > 0 ? wm[i][o] / total : 0.0;
  }
  return wm;
}

}  // namespace

RefTensor resize2d(const RefTensor& x, int64_t out_h, int64_t out_w, bool nearest) {
  const int64_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
  RefTensor y{{n, out_h, out_w, c}, std::vector<double>(static_cast<size_t>(n * out_h * out_w * c), 0.0)};
  auto at = [&](int64_t b, int64_t i, int64_t j, int64_t ch) { return x.data[((b * h + i) * w + j) * c + ch]; };
  if (nearest) {
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < out_h; ++i)
        for (int64_t j = 0; j < out_w; ++j)
          for (int64_t ch = 0; ch < c; ++ch) {
            int64_t si = static_cast<int64_t>(std::floor((i + 0.5) * h / out_h));
            int64_t sj = static_cast<int64_t>(std::floor((j + 0.5) * w / out_w));
            y.data[((b * out_h + i) * out_w + j) * c + ch] = at(b, si, sj, ch);
          }
    return y;
  }
  auto wh = bilinear_weights(h, out_h), ww = bilinear_weights(w, out_w);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < out_h; ++i)
      for (int64_t j = 0; j < out_w; ++j)
        for (int64_t ch = 0; ch < c; ++ch) {
          double acc = 0;
          for (int64_t si = 0; si < h; ++si) {
            if (wh[si][i] == 0) continue;
            for (int64_t sj = 0; sj < w; ++sj) acc += wh[si][i] * ww[sj][j] * at(b, si, sj, ch);
          }
          y.data[((b * out_h + i) * out_w + j) * c + ch] = acc;
        }
  return y;
}

std::vector<KerasCase> read_keras_reference(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::vector<KerasCase> cases;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> parts;
    std::stringstream ss(line);
    std::string part;
    while (std::getline(ss, part, '|')) parts.push_back(part);
    if (parts.size() != 3) throw std::runtime_error(path + ": bad line '" + line.substr(0, 40) + "'");
    KerasCase k;
    std::stringstream(parts[0]) >> k.name;
    std::stringstream shape(parts[1]), values(parts[2]);
    for (int64_t d; shape >> d;) k.shape.push_back(d);
    for (double v; values >> v;) k.values.push_back(v);
    cases.push_back(k);
  }
  return cases;
}

std::vector<float> keras_reference_x(int64_t n) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(std::sin(0.1 * i + 0.3));
  return v;
}
std::vector<float> keras_reference_kernel(int64_t n) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(std::cos(0.37 * i));
  return v;
}
std::vector<float> keras_reference_bias(int64_t n) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(0.1 * i - 0.2);
  return v;
}

}  // namespace kiln::ref
