#pragma once
#include <cstdint>

#include "quant/observer.h"
#include "quant/threshold.h"
#include "tensor/dtype.h"

namespace kiln::quant {

// real = scale * (q - zero_point), q in dtype's range.
struct QuantParams {
  DType dtype = DType::s8;  // u8 or s8
  float scale = 1.f;
  int32_t zero_point = 0;
};

// The smallest scale Kiln hands out (float epsilon, as PyTorch's observers clamp): a value that
// was always 0 (or a weight channel of zeros) still gets a scale that requantization
// multipliers (s_in * s_w / s_out) can divide by and stay finite.
constexpr float kMinScale = 1.1920929e-07f;

// Symmetric activation parameters from the threshold T of the chosen method: u8 with zero
// point 0 and scale T / 255 when nothing negative was seen (after ReLU), else s8 with scale
// T / 127. For u8 the KL search compares against twice options.kl_target_bins levels (u8
// has twice s8's non-negative levels). Throws std::invalid_argument when the observer saw no
// finite value (nothing to calibrate from).
QuantParams activation_params(const HistogramObserver& observer, CalibrationMethod method,
                              const ThresholdOptions& options = {});

}  // namespace kiln::quant
