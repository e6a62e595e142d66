#include "nn/initializers.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "tensor/random.h"

namespace kiln::nn {
namespace {

// Keras's Orthogonal(gain=1): the Q of a normal matrix's QR with R's diagonal made positive
// (what modified Gram-Schmidt gives), over the kernel flattened to [prod(leading), last];
// transposed when that is wider than tall. Recurrent kernels' default.
Tensor orthogonal(const Shape& shape, uint64_t seed) {
  if (numel(shape) == 0) return Tensor::zeros(shape);  // nothing to draw (read_initializer's name check)
  if (shape.size() < 2) throw std::invalid_argument("orthogonal initializer needs rank >= 2, got " + shape_str(shape));
  const int64_t cols = shape.back(), rows = cols > 0 ? numel(shape) / cols : 0;
  const int64_t n = std::max(rows, cols), k = std::min(rows, cols);
  std::vector<float> a = random_normal({n, k}, 0.f, 1.f, seed).to_vector();  // column j: a[i * k + j]
  std::vector<double> q(a.begin(), a.end());
  for (int64_t j = 0; j < k; ++j) {
    for (int64_t p = 0; p < j; ++p) {
      double dot = 0;
      for (int64_t i = 0; i < n; ++i) dot += q[i * k + p] * q[i * k + j];
      for (int64_t i = 0; i < n; ++i) q[i * k + j] -= dot * q[i * k + p];
    }
    double norm = 0;
    for (int64_t i = 0; i < n; ++i) norm += q[i * k + j] * q[i * k + j];
    norm = std::sqrt(norm);
    for (int64_t i = 0; i < n; ++i) q[i * k + j] = norm > 0 ? q[i * k + j] / norm : 0.0;
  }
  std::vector<float> out(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = static_cast<float>(rows >= cols ? q[r * k + c] : q[c * k + r]);
  return Tensor::from_vector(out, shape);
}

}  // namespace

Tensor initialize(const std::string& name, const Shape& shape, uint64_t seed) {
  if (name == "zeros") return Tensor::zeros(shape);
  if (name == "ones") return Tensor::ones(shape);
  double fan_in = 1, fan_out = 1;
  if (shape.size() == 1) {
    fan_in = fan_out = static_cast<double>(shape[0]);
  } else if (shape.size() >= 2) {
    double receptive = 1;
    for (size_t i = 0; i + 2 < shape.size(); ++i) receptive *= shape[i];
    fan_in = shape[shape.size() - 2] * receptive;
    fan_out = shape[shape.size() - 1] * receptive;
  }
  // Keras scales truncated normals by this constant so the truncation keeps the variance.
  constexpr double kTruncatedStd = 0.87962566103423978;
  if (name == "glorot_uniform") {
    float limit = static_cast<float>(std::sqrt(6.0 / (fan_in + fan_out)));
    return random_uniform(shape, -limit, limit, seed);
  }
  if (name == "glorot_normal") {
    return truncated_normal(shape, 0.f, static_cast<float>(std::sqrt(2.0 / (fan_in + fan_out)) / kTruncatedStd), seed);
  }
  if (name == "he_normal") {
    return truncated_normal(shape, 0.f, static_cast<float>(std::sqrt(2.0 / fan_in) / kTruncatedStd), seed);
  }
  if (name == "he_uniform") {
    float limit = static_cast<float>(std::sqrt(6.0 / fan_in));
    return random_uniform(shape, -limit, limit, seed);
  }
  // Keras's "uniform" is RandomUniform(minval=-0.05, maxval=0.05) (Embedding's default).
  if (name == "uniform" || name == "random_uniform") return random_uniform(shape, -0.05f, 0.05f, seed);
  if (name == "lecun_normal") {
    return truncated_normal(shape, 0.f, static_cast<float>(std::sqrt(1.0 / fan_in) / kTruncatedStd), seed);
  }
  if (name == "orthogonal") return orthogonal(shape, seed);
  throw std::invalid_argument("unknown initializer '" + name +
                              "' (expected glorot_uniform, glorot_normal, he_normal, he_uniform, lecun_normal, orthogonal, uniform, zeros, ones)");
}

}  // namespace kiln::nn
