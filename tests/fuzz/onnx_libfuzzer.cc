// libFuzzer entry for the ONNX importer; it runs ops, so build it with Bazel and clang like the
// graph one.
#include <cstddef>
#include <cstdint>

int kiln_fuzz_onnx(const uint8_t* data, size_t size);  // onnx_fuzz_target.cc

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln_fuzz_onnx(data, size);
  return 0;
}
