// Fuzz target for the ONNX importer (runtime_export/onnx/onnx_import.h), external data included.
// An accepted model must
// give a valid graph whose constants are sound tensors and which, fed a small input, runs or
// fails cleanly: a hostile model reaches the ops with hostile attributes.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "runtime_export/onnx/onnx_import.h"
#include "tests/fuzz/fuzz_support.h"

// The model directory every fuzz input is imported from: external data resolves against it,
// and it holds one file, weights.data, of 1024 small floats (kiln_fuzz_onnx_external_bytes).
const std::string& kiln_fuzz_onnx_dir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    const fs::path d = fs::temp_directory_path() / ("kiln_fuzz_onnx_" + std::to_string(getpid()));
    fs::create_directories(d);
    std::vector<float> v(1024);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 17) * 0.125f - 1.f;
    std::ofstream(d / "weights.data", std::ios::binary).write(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
    return d.string();
  }();
  return dir;
}

int kiln_fuzz_onnx(const uint8_t* data, size_t size) {
  using namespace kiln;
  const char* const kFormat = "onnx";
  const std::string source = "fuzz-input.onnx";
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  graph::Graph g;
  if (!fuzz::accepts(kFormat, source, [&] { g = runtime_export::parse_onnx(bytes, source, kiln_fuzz_onnx_dir()); })) return 0;
  for (const graph::Constant& c : g.constants) fuzz::check_tensor(kFormat, c.tensor);
  try {
    g.validate();
  } catch (const std::exception& e) {
    fuzz::bug(kFormat, std::string("an imported graph does not validate: ") + e.what());
    return 1;
  }
  // Too big to run as a fuzz case: any value over 2^18 elements at batch 2.
  for (const graph::Value& v : g.values) {
    int64_t n = 1;
    for (int64_t d : v.shape) n = d > (1 << 18) || n > (1 << 18) ? (1 << 19) : n * (d == graph::kBatch ? 2 : d);
    if (n > (1 << 18)) return 1;
  }
  std::vector<Tensor> feeds;
  for (int i : g.inputs) {
    Shape s = g.values[i].shape;
    for (int64_t& d : s) d = d == graph::kBatch ? 2 : d;
    feeds.push_back(Tensor::zeros(s, g.values[i].dtype));
  }
  fuzz::accepts(kFormat, source, [&] {
    try {
      g.run(feeds);
    } catch (const std::exception& e) {
      throw std::runtime_error(source + ": " + e.what());  // ops name the op, not the file
    }
  });
  return 1;
}
