#include "quant/threshold.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "quant/entropy.h"

namespace kiln::quant {
namespace {

double percentile_threshold(const HistogramObserver& o, double percentile) {
  if (percentile == 100) return o.max_abs();
  const std::vector<int64_t>& hist = o.histogram();
  const double target = percentile / 100.0 * static_cast<double>(o.count());
  double below = 0;
  for (int b = 0; b < HistogramObserver::kBins; ++b) {
    const double here = static_cast<double>(hist[b]);
    if (here > 0 && below + here >= target) {
      // Values are taken as spread evenly within the bin.
      const double t = (b + (target - below) / here) * o.bin_width();
      return std::min(t, static_cast<double>(o.max_abs()));
    }
    below += here;
  }
  return o.max_abs();
}

double kl_threshold(const HistogramObserver& o, int target_bins) {
  std::vector<int64_t> hist = o.histogram();
  hist[0] -= o.zero_count();
  const int bins = kl_threshold_bins(hist, target_bins);
  return std::min(bins * o.bin_width(), static_cast<double>(o.max_abs()));
}

}  // namespace

const char* calibration_method_name(CalibrationMethod m) {
  switch (m) {
    case CalibrationMethod::minmax: return "minmax";
    case CalibrationMethod::percentile: return "percentile";
    case CalibrationMethod::kl: return "kl";
  }
  return "?";
}

CalibrationMethod calibration_method_from_name(const std::string& name) {
  for (CalibrationMethod m : {CalibrationMethod::minmax, CalibrationMethod::percentile, CalibrationMethod::kl}) {
    if (name == calibration_method_name(m)) return m;
  }
  throw std::invalid_argument("unknown calibration method '" + name + "' (minmax, percentile or kl)");
}

double threshold(const HistogramObserver& observer, CalibrationMethod method, const ThresholdOptions& options) {
  if (!(options.percentile > 0 && options.percentile <= 100)) {
    throw std::invalid_argument("threshold: percentile = " + std::to_string(options.percentile) +
                                " must be in (0, 100]");
  }
  if (options.kl_target_bins < 1 || options.kl_target_bins > HistogramObserver::kBins) {
    throw std::invalid_argument("threshold: kl_target_bins = " + std::to_string(options.kl_target_bins) +
                                " must be in [1, " + std::to_string(HistogramObserver::kBins) + "]");
  }
  if (observer.count() == 0 || observer.max_abs() == 0) return 0;
  switch (method) {
    case CalibrationMethod::minmax: return observer.max_abs();
    case CalibrationMethod::percentile: return percentile_threshold(observer, options.percentile);
    case CalibrationMethod::kl: return kl_threshold(observer, options.kl_target_bins);
  }
  throw std::invalid_argument("threshold: unknown calibration method");
}

}  // namespace kiln::quant
