#include "benchmarks/amx_sample_data.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "tensor/random.h"

namespace kiln::bench {
namespace {

// Source index and weight of the upper neighbour along one axis, per output position.
struct Taps {
  std::vector<int64_t> lo, hi;
  std::vector<float> w;
};

Taps taps(int64_t in, int64_t out) {
  Taps t;
  double scale = static_cast<double>(in) / static_cast<double>(out);
  for (int64_t o = 0; o < out; ++o) {
    double src = std::clamp((o + 0.5) * scale - 0.5, 0.0, static_cast<double>(in - 1));
    int64_t lo = static_cast<int64_t>(std::floor(src));
    t.lo.push_back(lo);
    t.hi.push_back(std::min(lo + 1, in - 1));
    t.w.push_back(static_cast<float>(src - static_cast<double>(lo)));
  }
  return t;
}

}  // namespace

Tensor resize_normalize(const Tensor& images_u8, int64_t size) {
  if (images_u8.dtype() != DType::u8 || images_u8.ndim() != 4 || size < 1) {
    throw std::invalid_argument("resize_normalize: wants NHWC u8 images and a positive size, got " +
                                images_u8.describe());
  }
  const Shape& s = images_u8.shape();
  const int64_t n = s[0], h = s[1], w = s[2], c = s[3];
  Taps ty = taps(h, size), tx = taps(w, size);
  Tensor out = Tensor::empty({n, size, size, c}, DType::f32);
  const uint8_t* src = images_u8.data<uint8_t>();
  float* dst = out.data<float>();
#pragma omp parallel for collapse(2)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t y = 0; y < size; ++y) {
      const uint8_t* row0 = src + (i * h + ty.lo[y]) * w * c;
      const uint8_t* row1 = src + (i * h + ty.hi[y]) * w * c;
      float* o = dst + ((i * size + y) * size) * c;
      for (int64_t x = 0; x < size; ++x) {
        for (int64_t k = 0; k < c; ++k) {
          auto at = [&](const uint8_t* row) {
            float a = row[tx.lo[x] * c + k], b = row[tx.hi[x] * c + k];
            return a + (b - a) * tx.w[x];
          };
          float top = at(row0), bottom = at(row1);
          float v = top + (bottom - top) * ty.w[y];
          o[x * c + k] = v / 127.5f - 1.f;  // ToTensor then Normalize(0.5, 0.5)
        }
      }
    }
  }
  return out;
}

std::vector<ImageBatch> synthetic_cifar10(int64_t count, int64_t batch, int64_t size, uint64_t seed) {
  std::vector<ImageBatch> batches;
  for (int64_t b = 0; b < count; ++b) {
    RandomStream rs(seed * 1000003 + static_cast<uint64_t>(b));
    Tensor raw = Tensor::empty({batch, 32, 32, 3}, DType::u8);
    uint8_t* px = raw.data<uint8_t>();
    for (int64_t i = 0; i < raw.numel(); ++i) px[i] = static_cast<uint8_t>(rs.below(256));
    std::vector<int32_t> labels(batch);
    for (int32_t& l : labels) l = static_cast<int32_t>(rs.below(10));
    batches.push_back({resize_normalize(raw, size), Tensor::from_int32(labels, {batch})});
  }
  return batches;
}

}  // namespace kiln::bench
