#include "quant/entropy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace kiln::quant {

int kl_threshold_bins(const std::vector<int64_t>& hist, int target_bins) {
  const int n = static_cast<int>(hist.size());
  if (target_bins < 1 || target_bins > n) {
    throw std::invalid_argument("kl_threshold_bins: target_bins = " + std::to_string(target_bins) +
                                " must be in [1, " + std::to_string(n) + "]");
  }
  // outliers[i] = sum(hist[i:]), what a threshold at bin i clips.
  std::vector<double> outliers(n + 1, 0.0);
  for (int j = n - 1; j >= 0; --j) {
    if (hist[j] < 0) throw std::invalid_argument("kl_threshold_bins: negative count in bin " + std::to_string(j));
    outliers[j] = outliers[j + 1] + static_cast<double>(hist[j]);
  }
  const double total = outliers[0];
  if (total == 0) return n;

  std::vector<double> level_sum(target_bins), level_nonzero(target_bins);
  int best_i = n;
  double best = std::numeric_limits<double>::infinity();
  for (int i = target_bins; i <= n; ++i) {
    auto p_at = [&](int j) { return static_cast<double>(hist[j]) + (j == i - 1 ? outliers[i] : 0.0); };
    // Bin j belongs to level j * target_bins / i: levels of (nearly) equal width even when
    // target_bins does not divide i, rather than piling the remainder into the last level.
    auto level_of = [&](int j) { return static_cast<int>(static_cast<int64_t>(j) * target_bins / i); };
    std::fill(level_sum.begin(), level_sum.end(), 0.0);
    std::fill(level_nonzero.begin(), level_nonzero.end(), 0.0);
    for (int j = 0; j < i; ++j) {
      level_sum[level_of(j)] += static_cast<double>(hist[j]);
      level_nonzero[level_of(j)] += p_at(j) != 0;
    }
    const double q_total = total - outliers[i];
    if (q_total == 0) continue;  // everything clipped: Q is empty
    double kl = 0;
    for (int j = 0; j < i; ++j) {
      const double p = p_at(j);
      if (p == 0) continue;  // 0 * log(0 / q) = 0; Q is 0 there too
      const int level = level_of(j);
      const double q = level_sum[level] / level_nonzero[level];
      if (q == 0) {
        kl = std::numeric_limits<double>::infinity();
        break;
      }
      kl += (p / total) * std::log((p / total) / (q / q_total));
    }
    if (kl <= best) best = kl, best_i = i;
  }
  return best_i;
}

}  // namespace kiln::quant
