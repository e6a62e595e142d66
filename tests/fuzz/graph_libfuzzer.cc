// libFuzzer entry for the graph loader; it runs ops, so build it with Bazel and clang like the
// saved-model one.
#include <cstddef>
#include <cstdint>

int kiln_fuzz_graph(const uint8_t* data, size_t size);  // graph_fuzz_target.cc

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln_fuzz_graph(data, size);
  return 0;
}
