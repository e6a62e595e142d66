// libFuzzer entry for the saved-model loader. It builds models (layers, oneDNN), so it links
// the whole library: build it with Bazel and clang rather than through scripts/libfuzzer.
#include <cstddef>
#include <cstdint>

int kiln_fuzz_saved_model(const uint8_t* data, size_t size);  // saved_model_fuzz_target.cc

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln_fuzz_saved_model(data, size);
  return 0;
}
