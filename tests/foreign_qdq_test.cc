// QDQ ONNX files written by ONNX Runtime's own quantize_static (tests/data/foreign_onnx/
// make_models.py, write_qdq_models) import as int8 Kiln graphs and match ONNX Runtime running
// the same file; Kiln's own QDQ export imports back.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "base/files.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "graph/graph.h"
#include "kiln.h"
#include "nn/applications/applications.h"
#include "quant/quantize.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tests/tensor_compare.h"
#include "tests/temp_path.h"
#include "runtime_export/onnx/onnx_tensor.h"  // the onnx protos

namespace kiln {
namespace {

const std::string kDir = "tests/data/foreign_onnx/";

int count_ops(const graph::Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes) n += node.call.op() == op;
  return n;
}

int top1_agreement(const Tensor& a, const Tensor& b) {
  std::vector<int32_t> x = argmax(a, -1).to_int32(), y = argmax(b, -1).to_int32();
  int same = 0;
  for (size_t i = 0; i < x.size(); ++i) same += x[i] == y[i];
  return same;
}

double max_abs(const Tensor& a) {
  double m = 0;
  for (float v : a.to_vector()) m = std::max(m, std::fabs(double(v)));
  return m;
}

onnx::ModelProto load_proto(const std::string& path) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(base::read_file(path))) << path;
  return m;
}

// The scale of the DequantizeLinear that writes the graph's output: one step of the logits.
float output_step(const onnx::ModelProto& m) {
  for (const auto& n : m.graph().node()) {
    if (n.output(0) != m.graph().output(0).name()) continue;
    EXPECT_EQ(n.op_type(), "DequantizeLinear");
    for (const auto& t : m.graph().initializer()) {
      if (t.name() == n.input(1)) return runtime_export::onnx_io::from_tensor_proto(t).to_vector().at(0);
    }
  }
  ADD_FAILURE() << "no DequantizeLinear writes the output";
  return 0;
}

struct Case {
  std::string variant;
  int min_int8_layers;  // qconv2d + qlinear the import must make
};

class OnnxRuntimeQdq : public ::testing::TestWithParam<Case> {};

// Tolerance: ONNX Runtime fuses the QDQ groups into integer kernels (QLinearConv, ...) that
// requantize with a fixed-point multiplier; Kiln's int8 oneDNN kernels requantize in f32. An
// output can therefore land one quantization step apart, and a step propagates through the
// layers after it: the logits agree within 2 steps of the logits' own QuantizeLinear scale.
TEST_P(OnnxRuntimeQdq, MatchesOnnxRuntime) {
  const Case c = GetParam();
  const std::string base = kDir + "mobilenet_v3_small." + c.variant;
  graph::Graph g = runtime_export::import_onnx(base + ".onnx");
  const int int8_layers = count_ops(g, "qconv2d") + count_ops(g, "qlinear");
  std::printf("%s: %d int8 layers (qconv2d %d, qlinear %d), %d f32 conv2d, %d linear, %d quantize_linear, %d dequantize_linear\n",
              c.variant.c_str(), int8_layers, count_ops(g, "qconv2d"), count_ops(g, "qlinear"), count_ops(g, "conv2d"),
              count_ops(g, "linear"), count_ops(g, "quantize_linear"), count_ops(g, "dequantize_linear"));
  EXPECT_GE(int8_layers, c.min_int8_layers);
  Tensor x = data::read_npy(kDir + "mobilenet_v3_small.qdq.input.npy");
  Tensor want = data::read_npy(base + ".output.npy");
  const int n = static_cast<int>(x.shape()[0]);

  runtime_export::InferenceModel model(g);
  Tensor got = model.run(x);
  Tensor eager = g.run(x);
  const double diff = testing::max_abs_diff(got, want), eager_diff = testing::max_abs_diff(eager, want);
  const int agree = top1_agreement(got, want);
  std::printf("%s: vs ONNX Runtime on %d images: max abs diff %.4g (InferenceModel), %.4g (Graph::run), max |logit| %.3g, top-1 %d/%d\n",
              c.variant.c_str(), n, diff, eager_diff, max_abs(want), agree, n);
  const float step = output_step(load_proto(base + ".onnx"));
  std::printf("%s: the logits' quantization step is %.3g: %.1f steps apart at most\n", c.variant.c_str(), step, diff / step);
  EXPECT_LE(diff, 4 * step) << c.variant;
  EXPECT_LE(eager_diff, 4 * step) << c.variant;
  EXPECT_GE(agree, n - 1) << c.variant;
}

INSTANTIATE_TEST_SUITE_P(MobileNetV3Small, OnnxRuntimeQdq,
                         ::testing::Values(Case{"qdq_u8", 20}, Case{"qdq_s8", 50}),
                         [](const auto& info) { return info.param.variant; });

// A pattern Kiln cannot honour is refused naming the node: here a per-axis scale on
// activations (Kiln quantizes activations per tensor).
TEST(QdqImport, PerAxisActivationScaleNamesTheNode) {
  onnx::ModelProto m = load_proto(kDir + "mobilenet_v3_small.qdq_u8.onnx");
  onnx::NodeProto* quantize = nullptr;
  for (auto& n : *m.mutable_graph()->mutable_node()) {
    if (n.op_type() == "QuantizeLinear" && !quantize) quantize = &n;
  }
  ASSERT_NE(quantize, nullptr);
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    if (t.name() != quantize->input(1)) continue;
    const float s = runtime_export::onnx_io::from_tensor_proto(t).to_vector()[0];
    runtime_export::onnx_io::to_tensor_proto(Tensor::from_vector({s, s, s}, {3}), t.name(), &t);
  }
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    if (t.name() != quantize->input(2)) continue;
    runtime_export::onnx_io::to_tensor_proto(Tensor::zeros({3}, runtime_export::onnx_io::from_tensor_proto(t).dtype()), t.name(), &t);
  }
  quantize->set_name("the_quantize_node");
  std::string bytes;
  ASSERT_TRUE(m.SerializeToString(&bytes));
  try {
    runtime_export::parse_onnx(bytes, "per_axis");
    FAIL() << "imported";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("the_quantize_node"), std::string::npos) << msg;
    EXPECT_NE(msg.find("per-axis"), std::string::npos) << msg;
  }
}

// Kiln's own int8 export (quant::quantize -> export_onnx) imports back as int8 layers that
// give the int8 model's outputs.
TEST(QdqImport, KilnQdqExportImportsBack) {
  set_global_seed(41);
  auto model = nn::applications::resnet18({16, 16, 3});
  auto int8 = quant::quantize(*model, data::Dataset::from_tensor_slices(random_uniform({32, 16, 16, 3}, -1.f, 1.f, 1)).batch(32));
  const std::string path = testing::temp_path("kiln_qdq_reimport.onnx");
  runtime_export::export_onnx(int8->inference_graph(), path);
  graph::Graph back = runtime_export::import_onnx(path);
  const int int8_layers = count_ops(back, "qconv2d") + count_ops(back, "qlinear");
  const int exported_layers = count_ops(int8->inference_graph(), "qconv2d") + count_ops(int8->inference_graph(), "qlinear");
  std::printf("Kiln QDQ export imported back: %d of %d int8 layers int8 again\n", int8_layers, exported_layers);
  EXPECT_EQ(int8_layers, exported_layers);
  Tensor x = random_uniform({16, 16, 16, 3}, -1.f, 1.f, 2);
  Tensor want = int8->run(x), got = runtime_export::InferenceModel(back).run(x);
  const double diff = testing::max_abs_diff(got, want);
  const int agree = top1_agreement(got, want);
  std::printf("Kiln QDQ export imported back: max abs diff %.4g (max |output| %.3g), top-1 %d/16\n", diff, max_abs(want), agree);
  EXPECT_LE(diff, 0.05 * max_abs(want));
  EXPECT_GE(agree, 15);
}

}  // namespace
}  // namespace kiln
