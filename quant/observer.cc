#include "quant/observer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace kiln::quant {

float HistogramObserver::max_abs() const { return count_ ? std::max(std::fabs(min_), std::fabs(max_)) : 0.f; }

void HistogramObserver::grow_to(double new_max_abs) {
  if (range_ == 0) {
    // Only zeros so far: they stay in bin 0 whatever the range.
    range_ = new_max_abs;
    return;
  }
  // The smallest whole factor that covers the new maximum keeps the re-binning exact. Past
  // kBins every old bin lands in bin 0, so the factor need not be an exact integer there.
  const double k = std::max(2.0, std::ceil(new_max_abs / range_));
  const int64_t factor = k < kBins ? static_cast<int64_t>(k) : kBins;
  std::vector<int64_t> merged(kBins, 0);
  for (int64_t i = 0; i < kBins; ++i) merged[i / factor] += hist_[i];
  hist_.swap(merged);
  range_ *= k;
}

void HistogramObserver::add(const float* v, int64_t n) {
  // First pass: counts and extremes of the finite values, so the range grows at most once per
  // update and the second pass bins against a fixed range.
  float lo = 0, hi = 0;
  int64_t finite = 0;
  for (int64_t i = 0; i < n; ++i) {
    float x = v[i];
    if (std::isnan(x)) {
      ++nan_count_;
    } else if (std::isinf(x)) {
      ++inf_count_;
    } else {
      if (finite++ == 0) {
        lo = hi = x;
      } else {
        lo = std::min(lo, x);
        hi = std::max(hi, x);
      }
    }
  }
  if (finite == 0) return;
  if (count_ == 0) {
    min_ = lo, max_ = hi;
  } else {
    min_ = std::min(min_, lo), max_ = std::max(max_, hi);
  }
  count_ += finite;
  double amax = std::max(std::fabs(double(lo)), std::fabs(double(hi)));
  if (amax > range_) grow_to(amax);
  const double per_unit = range_ > 0 ? kBins / range_ : 0;
  for (int64_t i = 0; i < n; ++i) {
    float x = v[i];
    if (!std::isfinite(x)) continue;
    if (x == 0) ++zero_count_;
    int64_t bin = static_cast<int64_t>(std::fabs(double(x)) * per_unit);
    ++hist_[std::min<int64_t>(bin, kBins - 1)];
  }
}

void HistogramObserver::update(const Tensor& x) {
  if (!x.defined()) throw std::invalid_argument("HistogramObserver::update: undefined tensor");
  if (!is_floating(x.dtype())) {
    throw std::invalid_argument("HistogramObserver::update: expects f32 or bf16, got " + x.describe());
  }
  if (x.dtype() == DType::f32 && x.is_contiguous()) {
    add(static_cast<const float*>(x.raw_data()), x.numel());
  } else {
    std::vector<float> v = x.to_vector();
    add(v.data(), static_cast<int64_t>(v.size()));
  }
}

}  // namespace kiln::quant
