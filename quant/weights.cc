#include "quant/weights.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "quant/params.h"

namespace kiln::quant {
namespace {

// Row-major values of w and the geometry that maps a flat index to its channel:
// channel = (i / inner) % channels.
struct Channels {
  std::vector<float> values;
  int64_t channels = 0, inner = 1;
};

Channels channels_of(const Tensor& w, int axis, const char* op) {
  if (!w.defined()) throw std::invalid_argument(std::string(op) + ": undefined weight tensor");
  if (!is_floating(w.dtype())) throw std::invalid_argument(std::string(op) + ": expects f32 or bf16 weights, got " + w.describe());
  if (w.ndim() == 0) throw std::invalid_argument(std::string(op) + ": a scalar weight has no channel axis");
  if (axis < -w.ndim() || axis >= w.ndim()) {
    throw std::invalid_argument(std::string(op) + ": axis " + std::to_string(axis) + " is out of range for " +
                                w.describe());
  }
  const int a = axis < 0 ? axis + w.ndim() : axis;
  Channels c;
  c.values = w.to_vector();
  c.channels = w.shape()[a];
  for (int d = a + 1; d < w.ndim(); ++d) c.inner *= w.shape()[d];
  for (size_t i = 0; i < c.values.size(); ++i) {
    if (!std::isfinite(c.values[i])) {
      throw std::invalid_argument(std::string(op) + ": weight " + w.describe() + " has a non-finite value (" +
                                  std::to_string(c.values[i]) + ") in channel " +
                                  std::to_string((static_cast<int64_t>(i) / c.inner) % c.channels) + " of axis " +
                                  std::to_string(a));
    }
  }
  return c;
}

}  // namespace

std::vector<float> weight_scales(const Tensor& w, int axis) {
  Channels c = channels_of(w, axis, "weight_scales");
  std::vector<float> amax(c.channels, 0.f);
  for (size_t i = 0; i < c.values.size(); ++i) {
    float& m = amax[(static_cast<int64_t>(i) / c.inner) % c.channels];
    m = std::max(m, std::fabs(c.values[i]));
  }
  std::vector<float> scales(c.channels);
  for (int64_t k = 0; k < c.channels; ++k) scales[k] = std::max(amax[k] / 127.f, kMinScale);
  return scales;
}

Tensor quantize_weights(const Tensor& w, int axis, const std::vector<float>& scales) {
  Channels c = channels_of(w, axis, "quantize_weights");
  if (static_cast<int64_t>(scales.size()) != c.channels) {
    throw std::invalid_argument("quantize_weights: " + std::to_string(scales.size()) + " scales for " +
                                std::to_string(c.channels) + " channels of " + w.describe());
  }
  for (size_t k = 0; k < scales.size(); ++k) {
    if (!(std::isfinite(scales[k]) && scales[k] > 0)) {
      throw std::invalid_argument("quantize_weights: scale " + std::to_string(k) + " is " + std::to_string(scales[k]) +
                                  "; scales must be positive and finite");
    }
  }
  Tensor q = Tensor::empty(w.shape(), DType::s8);
  int8_t* out = q.data<int8_t>();
  for (size_t i = 0; i < c.values.size(); ++i) {
    const double scale = scales[(static_cast<int64_t>(i) / c.inner) % c.channels];
    // nearbyint rounds half to even in the default rounding mode, as oneDNN and NumPy do.
    const double r = std::nearbyint(static_cast<double>(c.values[i]) / scale);
    out[i] = static_cast<int8_t>(std::clamp(r, -127.0, 127.0));
  }
  return q;
}

}  // namespace kiln::quant
