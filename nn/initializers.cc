#include "nn/initializers.h"

#include <cmath>
#include <stdexcept>

#include "tensor/random.h"

namespace kiln::nn {

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
  throw std::invalid_argument("unknown initializer '" + name +
                              "' (expected glorot_uniform, glorot_normal, he_normal, he_uniform, lecun_normal, uniform, zeros, ones)");
}

}  // namespace kiln::nn
