#include <cstring>

#include "nn/model_io.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

const char* const kFormat = "saved_model";

// A batch of one zero example for each model input: every layer already ran on one while the
// model was built, so the loaded model must run on it again.
std::vector<kiln::Tensor> zero_batch(const kiln::nn::Model& model) {
  std::vector<kiln::Tensor> xs;
  auto add = [&](const kiln::Shape& shape, kiln::DType dtype) {
    kiln::Shape s{1};
    s.insert(s.end(), shape.begin(), shape.end());
    xs.push_back(kiln::Tensor::zeros(s, dtype));
  };
  if (model.is_functional()) {
    const kiln::nn::LayerGraph& g = model.graph();
    for (size_t in : g.inputs) add(g.nodes[in].shape, g.nodes[in].dtype);
  } else if (auto in = model.built_input()) {
    add(in->first, in->second);
  }
  return xs;
}

bool same_outputs(const std::vector<kiln::Tensor>& a, const std::vector<kiln::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!kiln::fuzz::same_tensor(a[i].clone_detached(), b[i].clone_detached())) return false;
  }
  return true;
}

}  // namespace

int kiln_fuzz_saved_model(const uint8_t* data, size_t size) {
  using namespace kiln;
  const std::string source = "fuzz-input.kmodel";
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::shared_ptr<nn::Model> model;
  if (!fuzz::accepts(kFormat, source, [&] { model = nn::load_model_from_bytes(bytes, source); })) return 0;
  if (!model || !model->built()) {
    fuzz::bug(kFormat, "accepted a file but returned no built model");
    return 1;
  }
  uint64_t total = 0;
  for (const Variable& v : model->variables()) {
    fuzz::check_tensor(kFormat, v.value());
    total += v.value().nbytes();
  }
  if (total > size) fuzz::bug(kFormat, "weights hold " + std::to_string(total) + " bytes, the file only " + std::to_string(size));

  // The loaded model runs, and saving and loading it again is a fixed point: the same bytes
  // and the same predictions.
  std::vector<Tensor> y1, y2;
  std::string s1, s2;
  try {
    y1 = model->call(zero_batch(*model), false);
  } catch (const std::exception& e) {
    fuzz::bug(kFormat, std::string("a loaded model fails on a zero example: ") + e.what());
    return 1;
  }
  try {
    s1 = nn::serialize_model(*model);
    std::shared_ptr<nn::Model> again = nn::load_model_from_bytes(s1, "fuzz-round-trip.kmodel");
    s2 = nn::serialize_model(*again);
    y2 = again->call(zero_batch(*again), false);
  } catch (const std::exception& e) {
    fuzz::bug(kFormat, std::string("saving and loading an accepted model failed: ") + e.what());
    return 1;
  }
  if (s1 != s2) {
    size_t at = 0;
    while (at < s1.size() && at < s2.size() && s1[at] == s2[at]) ++at;
    fuzz::bug(kFormat, "save(load(save(model))) differs from save(model) at byte " + std::to_string(at));
  }
  if (!same_outputs(y1, y2)) fuzz::bug(kFormat, "a saved and reloaded model predicts differently");
  return 1;
}
