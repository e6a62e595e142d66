// libFuzzer entry for the mixed-precision cache file; it links oneDNN (ISA names), so build it
// with Bazel and clang like the graph one.
#include <cstddef>
#include <cstdint>

int kiln_fuzz_precision_cache(const uint8_t* data, size_t size);  // precision_cache_fuzz_target.cc

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln_fuzz_precision_cache(data, size);
  return 0;
}
