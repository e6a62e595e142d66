// libFuzzer entry for the csv loader; see scripts/libfuzzer.
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln_fuzz_csv(data, size);
  return 0;
}
