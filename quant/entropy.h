#pragma once
#include <cstdint>
#include <vector>

namespace kiln::quant {

// TensorRT's entropy calibration ("8-bit Inference with TensorRT", GTC 2017) on a histogram of
// |x| with equal bins starting at 0. For every candidate i in [target_bins, hist.size()]:
//   P = hist[0:i] with the outliers (hist[i:]) folded into its last bin;
//   Q = hist[0:i] merged into target_bins levels and expanded back over i bins, each level's
//       count spread evenly over the bins where P is nonzero (zero where P is zero);
// and returns the i minimizing KL(P || Q) (the largest such i on ties), i.e. the threshold
// i * bin_width. Candidates where Q is 0 while P is not (an empty last level under folded
// outliers) have infinite divergence and are skipped; i = hist.size() never is. Returns
// hist.size() for an empty histogram. Throws std::invalid_argument for target_bins outside
// [1, hist.size()] or a negative count.
int kl_threshold_bins(const std::vector<int64_t>& hist, int target_bins);

}  // namespace kiln::quant
