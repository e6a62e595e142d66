#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace kiln::quant {

// Running statistics of one activation over the calibration data: signed min/max and a
// histogram of |x| that the calibration methods (quant/threshold.h) pick a clipping threshold
// from. One observer per value; not thread-safe.
//
// The histogram has kBins equal bins over [0, range()]. range() starts at the first nonzero
// max|x| seen and grows by a whole factor k when a larger |x| arrives, so every old bin falls
// entirely into one new bin (new bin j = old bins [j*k, (j+1)*k)): re-binning is exact, counts
// are kept, and no data has to be kept around (the fixed-bin scheme of TensorRT, PyTorch's
// HistogramObserver and INC, without their interpolation when splitting old bins).
class HistogramObserver {
 public:
  static constexpr int kBins = 2048;

  // f32 or bf16, any shape and strides. NaN and +-inf are skipped and counted: they have no
  // place in a range, and one of them would otherwise make every threshold meaningless.
  // Throws std::invalid_argument for an undefined tensor or an integer dtype.
  void update(const Tensor& x);

  // Finite values seen; min() / max() / max_abs() are 0 until there is one.
  int64_t count() const { return count_; }
  int64_t nan_count() const { return nan_count_; }
  int64_t inf_count() const { return inf_count_; }
  // Values exactly 0 (a ReLU's negative half): they quantize exactly at any threshold.
  int64_t zero_count() const { return zero_count_; }
  float min() const { return count_ ? min_ : 0.f; }
  float max() const { return count_ ? max_ : 0.f; }
  float max_abs() const;

  // Upper edge of the last bin; 0 while every value seen was 0.
  double range() const { return range_; }
  double bin_width() const { return range_ / kBins; }
  // kBins counts of |x|; bin i holds |x| in [i, i+1) * bin_width() (the last one includes
  // range()). While range() == 0 every count (all zeros) is in bin 0.
  const std::vector<int64_t>& histogram() const { return hist_; }

 private:
  void grow_to(double new_max_abs);
  void add(const float* v, int64_t n);

  std::vector<int64_t> hist_ = std::vector<int64_t>(kBins, 0);
  double range_ = 0;
  float min_ = 0, max_ = 0;
  int64_t count_ = 0, nan_count_ = 0, inf_count_ = 0, zero_count_ = 0;
};

}  // namespace kiln::quant
