#include "tests/foreign_models.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>

#include "data/npy.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tensor/ops/cast.h"
#include "tensor/random.h"

namespace kiln::testing {
namespace {

const std::string kDir = "tests/data/foreign_onnx/";
constexpr int64_t kBertVocabulary = 50;  // make_models.py's BertStyleEncoder(vocab=50)

}  // namespace

std::vector<std::string> foreign_model_files() {
  return {"resnet10",          "mobilenet_v3_small", "mobilenet_v3_small.dynamo", "efficientnet_b0.opset11",
          "efficientnet_b0.opset17", "efficientnet_b0.opset21", "convnext.opset11", "convnext.opset13",
          "convnext.opset17",  "convnext.opset18",   "convnext.opset20",          "convnext.opset21",
          "convnext.external", "cnn_ops.opset11",    "cnn_ops.opset13",           "cnn_ops.opset17",
          "cnn_ops.opset18",   "cnn_ops.opset20",    "cnn_ops.opset21",           "vit_tiny.opset14",
          "vit_tiny.opset17",  "bert_block.opset14", "bert_block.opset17"};
}

bool runs_in_onnx_runtime(const std::string& file) {
  return file.find('.') == std::string::npos || file == "mobilenet_v3_small.dynamo" || file == "efficientnet_b0.opset11" ||
         file == "convnext.opset17" || file == "cnn_ops.opset11" || file == "vit_tiny.opset14" || file == "bert_block.opset17";
}

std::string foreign_model_name(const std::string& file) { return file.substr(0, file.find('.')); }

std::vector<Tensor> foreign_inputs(const std::string& file) {
  const std::string name = foreign_model_name(file);
  if (name == "bert_block") return {data::read_npy(kDir + name + ".input0.npy"), data::read_npy(kDir + name + ".input1.npy")};
  return {data::read_npy(kDir + name + ".input.npy")};
}

Tensor foreign_output(const std::string& file) { return data::read_npy(kDir + foreign_model_name(file) + ".output.npy"); }

const graph::Graph& foreign_graph(const std::string& file) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<graph::Graph>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& g = cache[file];
  if (!g) g = std::make_unique<graph::Graph>(runtime_export::import_onnx(kDir + file + ".onnx"));
  return *g;
}

std::vector<Tensor> generated_inputs(const std::string& file, int64_t batch, uint64_t seed) {
  const graph::Graph& g = foreign_graph(file);
  std::vector<Tensor> out;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const graph::Value& v = g.values[g.inputs[i]];
    Shape s = v.shape;
    if (s[0] == graph::kBatch) s[0] = batch;
    if (is_floating(v.dtype)) {
      out.push_back(random_normal(s, 0.f, 1.f, seed + i));
      continue;
    }
    // A BERT's input_ids (input 0) and attention_mask (input 1).
    std::vector<float> values = random_uniform(s, 0.f, static_cast<float>(kBertVocabulary), seed + i).to_vector();
    for (int64_t r = 0; r < s[0]; ++r) {
      for (int64_t c = 0; c < s[1]; ++c) {
        float& x = values[static_cast<size_t>(r * s[1] + c)];
        x = i == 0 ? std::min(std::floor(x), static_cast<float>(kBertVocabulary - 1)) : (c < s[1] - 3 * (r % 4) ? 1.f : 0.f);
      }
    }
    out.push_back(cast(Tensor::from_vector(values, s), v.dtype));
  }
  return out;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.to_vector()) m = std::max(m, std::fabs(static_cast<double>(v)));
  return m;
}

std::string test_name(const std::string& file) {
  std::string s = file;
  for (char& c : s) c = c == '.' ? '_' : c;
  return s;
}

}  // namespace kiln::testing
