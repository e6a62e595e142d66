// libFuzzer entry for the checkpoint loader; see scripts/libfuzzer.
#include <cstring>

#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/mutators.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln_fuzz_checkpoint(data, size);
  return 0;
}

// Most mutations would only ever meet the CRC check; fix the CRC after three in four of them so
// that the parser behind it gets fuzzed too.
// Weak, so the replay binaries (no libFuzzer) link too; only libFuzzer calls the custom mutator.
extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size) __attribute__((weak));
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, max_size);
  if (seed % 4 != 0 && size >= 20) {
    std::string b(reinterpret_cast<char*>(data), size);
    kiln::fuzz::fix_checkpoint_crc(b);
    std::memcpy(data, b.data(), size);
  }
  return size;
}
