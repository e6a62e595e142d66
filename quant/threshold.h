#pragma once
#include <string>

#include "quant/observer.h"

namespace kiln::quant {

// How a clipping threshold T of |x| is chosen from what an observer saw.
//   minmax:     T = max|x|; nothing clipped, coarsest steps.
//   percentile: T = the |x| below which `percentile` percent of the values fall.
//   kl:         TensorRT's entropy calibration (quant/entropy.h): the T whose int8 version of
//               the |x| distribution loses the least information (KL divergence).
enum class CalibrationMethod { minmax, percentile, kl };

const char* calibration_method_name(CalibrationMethod m);          // "minmax", "percentile", "kl"
CalibrationMethod calibration_method_from_name(const std::string& name);  // throws naming it

struct ThresholdOptions {
  double percentile = 99.99;  // in (0, 100]
  // Quantization levels of the non-negative half the KL search compares against: 128 for s8
  // (0..127). activation_params() doubles it for u8 (0..255).
  int kl_target_bins = 128;
};

// The threshold T (>= 0, <= max|x|) for a method. Exact zeros take part in percentile (they
// are values like any other) but not in kl: every threshold represents them exactly, so they
// say nothing about T, and a ReLU output's spike of zeros smeared over Q's first level would
// pull T down (NVIDIA's pytorch-quantization flattens bin 0 for the same reason). 0 for an
// observer that saw no finite value. Throws std::invalid_argument for options out of range.
double threshold(const HistogramObserver& observer, CalibrationMethod method, const ThresholdOptions& options = {});

}  // namespace kiln::quant
