#include "tests/rnn_reference.h"

#include <cmath>
#include <stdexcept>

namespace kiln::ref {
namespace {

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

}  // namespace

std::vector<RefTensor> rnn(const RnnRefOptions& o, const RefTensor& x, const RefTensor& kernel,
                           const RefTensor& recurrent_kernel, const RefTensor& bias, const RefTensor* h0,
                           const RefTensor* c0, const RefTensor* mask) {
  const int64_t b = x.shape[0], t = x.shape[1], in = x.shape[2];
  const int gates = o.cell == "lstm" ? 4 : o.cell == "gru" ? 3 : 1;
  const int64_t u = kernel.shape[1] / gates, gu = gates * u;
  RefTensor seq{{b, t, u}, std::vector<double>(b * t * u)}, hout{{b, u}, {}}, cout{{b, u}, {}};
  for (int64_t r = 0; r < b; ++r) {
    std::vector<double> h(u, 0.0), c(u, 0.0);
    if (h0) h.assign(h0->data.begin() + r * u, h0->data.begin() + (r + 1) * u);
    if (c0) c.assign(c0->data.begin() + r * u, c0->data.begin() + (r + 1) * u);
    for (int64_t k = 0; k < t; ++k) {
      const int64_t step = o.go_backwards ? t - 1 - k : k;
      const double* xs = &x.data[(r * t + step) * in];
      std::vector<double> xw(gu, 0.0), hw(gu, 0.0);
      for (int64_t j = 0; j < gu; ++j) {
        for (int64_t i = 0; i < in; ++i) xw[j] += xs[i] * kernel.data[i * gu + j];
        for (int64_t i = 0; i < u; ++i) hw[j] += h[i] * recurrent_kernel.data[i * gu + j];
      }
      std::vector<double> nh(u), nc(c);
      for (int64_t j = 0; j < u; ++j) {
        if (o.cell == "lstm") {
          auto z = [&](int g) { return xw[g * u + j] + hw[g * u + j] + bias.data[g * u + j]; };
          const double ig = sigmoid(z(0)), fg = sigmoid(z(1)), cc = std::tanh(z(2)), og = sigmoid(z(3));
          nc[j] = fg * c[j] + ig * cc;
          nh[j] = og * std::tanh(nc[j]);
        } else if (o.cell == "gru") {
          const double* bi = &bias.data[0];
          const double* br = &bias.data[3 * u];
          const double zg = sigmoid(xw[j] + bi[j] + hw[j] + br[j]);
          const double rg = sigmoid(xw[u + j] + bi[u + j] + hw[u + j] + br[u + j]);
          const double hh = std::tanh(xw[2 * u + j] + bi[2 * u + j] + rg * (hw[2 * u + j] + br[2 * u + j]));
          nh[j] = zg * h[j] + (1 - zg) * hh;
        } else {
          nh[j] = std::tanh(xw[j] + hw[j] + bias.data[j]);
        }
      }
      const bool masked = mask && mask->data[r * t + step] == 0.0;
      double* out = &seq.data[(r * t + k) * u];
      for (int64_t j = 0; j < u; ++j) out[j] = masked ? (o.zero_output_for_mask ? 0.0 : h[j]) : nh[j];
      if (!masked) h = nh, c = nc;
    }
    hout.data.insert(hout.data.end(), h.begin(), h.end());
    cout.data.insert(cout.data.end(), c.begin(), c.end());
  }
  std::vector<RefTensor> result{seq, hout};
  if (o.cell == "lstm") result.push_back(cout);
  return result;
}

}  // namespace kiln::ref
