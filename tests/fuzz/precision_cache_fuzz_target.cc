// Fuzz target for the mixed-precision cache file (tensor/onednn/precision_cache.h). An accepted
// file must re-serialise to the same bytes (version 1 has one encoding), and the decision made
// from it must be one of the two policies, bf16 only where the ISA has it and it measured faster.
#include <cmath>

#include "tensor/onednn/precision_cache.h"
#include "tensor/onednn/precision_probe.h"
#include "tests/fuzz/fuzz_support.h"

int kiln_fuzz_precision_cache(const uint8_t* data, size_t size) {
  using namespace kiln;
  const char* const kFormat = "precision_cache";
  const std::string source = "fuzz-input.txt";
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  cpu::ProbeRecord record;
  if (!fuzz::accepts(kFormat, source, [&] { record = cpu::parse_probe_cache(bytes, source); })) return 0;
  if (cpu::serialize_probe_cache(record) != bytes) {
    fuzz::bug(kFormat, "an accepted file does not re-serialise to the same bytes");
  }
  cpu::PrecisionChoice c = cpu::decide_precision(record.key, record.timings);
  if (c.policy != "float32" && c.policy != "mixed_bfloat16") fuzz::bug(kFormat, "decided policy '" + c.policy + "'");
  if (c.reason.empty() || c.reason.find('\n') != std::string::npos) {
    fuzz::bug(kFormat, "the reason is not one line: '" + c.reason + "'");
  }
  if (!std::isfinite(c.ratio) || c.ratio < 0) fuzz::bug(kFormat, "ratio " + std::to_string(c.ratio));
  if (c.policy == "mixed_bfloat16" && (!cpu::bf16_native(record.key) || !(c.ratio > cpu::kMinBf16Speedup))) {
    fuzz::bug(kFormat, "chose bf16 at ISA " + record.key.isa + " with ratio " + std::to_string(c.ratio));
  }
  return 1;
}
