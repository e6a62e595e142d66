// libFuzzer entry for the npy loader; see scripts/libfuzzer.
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln_fuzz_npy(data, size);
  return 0;
}
