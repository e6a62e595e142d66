#include "quant/params.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace kiln::quant {

QuantParams activation_params(const HistogramObserver& observer, CalibrationMethod method,
                              const ThresholdOptions& options) {
  if (observer.count() == 0) {
    throw std::invalid_argument("activation_params: the observer saw no finite value (" +
                                std::to_string(observer.nan_count()) + " NaN, " + std::to_string(observer.inf_count()) +
                                " inf)");
  }
  const bool unsigned_range = observer.min() >= 0;
  ThresholdOptions t = options;
  if (unsigned_range) t.kl_target_bins = std::min(2 * options.kl_target_bins, HistogramObserver::kBins);
  const double T = threshold(observer, method, t);
  const double levels = unsigned_range ? 255.0 : 127.0;
  const float scale = std::max(static_cast<float>(T / levels), kMinScale);
  return QuantParams{.dtype = unsigned_range ? DType::u8 : DType::s8, .scale = scale, .zero_point = 0};
}

}  // namespace kiln::quant
