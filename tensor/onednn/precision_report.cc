// Prints this machine's mixed-precision choice, measuring it if the cache has no answer yet:
//   bazel run //tensor/onednn:precision_report        (KILN_CACHE_DIR=... to use another cache)
#include <chrono>
#include <cstdio>

#include "tensor/onednn/precision_probe.h"

int main() {
  auto start = std::chrono::steady_clock::now();
  kiln::cpu::PrecisionChoice c = kiln::cpu::mixed_precision_choice();
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s\n", c.describe().c_str());
  std::printf("took %.1f ms%s\n", ms, c.from_cache ? " (from the cache)" : "");
  return 0;
}
