#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace kiln::cpu {

// Everything that changes whether bf16 beats f32: a cached answer is reused only when every
// field equals the current one.
struct ProbeKey {
  std::string cpu;     // CPUID brand string ("unknown" when the CPU gives none)
  std::string flags;   // the bf16-relevant CPUID flags present, fixed order ("none" when none)
  std::string onednn;  // "major.minor.patch"
  std::string isa;     // oneDNN's effective ISA: the detected one under any set_max_isa/DNNL_MAX_CPU_ISA cap
  // OpenMP threads of the process the choice is for. The probe times one thread (the steady
  // per-core ratio, see precision_measure.cc), so today this only keeps answers apart.
  int threads = 0;
  bool operator==(const ProbeKey&) const = default;
};

// Best-of times in seconds of the probe's matmul and convolution passes (each family summed).
struct ProbeTimings {
  double matmul_f32 = 0, matmul_bf16 = 0, conv_f32 = 0, conv_bf16 = 0;
};

struct ProbeRecord {
  ProbeKey key;
  ProbeTimings timings;
};

// The cache file, version 1: eleven "name value" lines in a fixed order (see the .cc), the last a
// CRC-32 of the bytes before it. Timings are stored rather than the decision, so the decision is
// always recomputed by decide_precision() and a file cannot smuggle in a choice of its own.
inline constexpr size_t kMaxProbeCacheBytes = 4096;
std::string serialize_probe_cache(const ProbeRecord& record);
// Strict: one encoding per record (numbers canonical, fields in order, nothing extra), every value
// bounded. Throws std::runtime_error naming `source` and the line at fault.
ProbeRecord parse_probe_cache(std::string_view bytes, const std::string& source);

}  // namespace kiln::cpu
