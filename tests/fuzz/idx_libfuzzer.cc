// libFuzzer entry for the idx loader; see scripts/libfuzzer.
#include <algorithm>
#include <cstring>

#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/mutators.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln_fuzz_idx(data, size);
  return 0;
}

// Mutating compressed bytes mostly tests zlib; for gzip inputs, mutate the inflated IDX bytes
// half the time and compress them again.
// Weak, so the replay binaries (no libFuzzer) link too; only libFuzzer calls the custom mutator.
extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size) __attribute__((weak));
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::string plain;
  std::string_view in(reinterpret_cast<char*>(data), size);
  if (seed % 2 == 0 || !kiln::fuzz::is_gzip(in) || !kiln::fuzz::gunzip(in, plain) || plain.size() > max_size) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  size_t n = plain.size();
  plain.resize(std::max<size_t>(2 * n, 64));
  plain.resize(LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(plain.data()), n, plain.size()));
  std::string out = kiln::fuzz::gzip(plain, 1 + seed % 9);
  if (out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}
