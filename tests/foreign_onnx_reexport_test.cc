// Issue 23: every model torch.onnx.export wrote into tests/data/foreign_onnx (make_models.py;
// each opset variant), imported, exported again by export_onnx and imported back: the
// re-imported graph (Graph::run and InferenceModel) and ONNX Runtime's run of the exported file
// (one variant per model: each run costs a Python start-up) match PyTorch within 1e-4. The
// round trip keeps the graph's shape: as many layout transposes, LayerNorms, softmaxes, convs
// and products as the first import. The int8 graphs' export is in foreign_onnx_int8_test.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "graph/graph.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tests/foreign_models.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

int count_op(const graph::Graph& g, const std::string& op) {
  int k = 0;
  for (const auto& n : g.nodes) k += n.call.op() == op;
  return k;
}

class ForeignOnnxReexport : public ::testing::TestWithParam<std::string> {};

TEST_P(ForeignOnnxReexport, ExportedAgainMatchesPyTorchInOnnxRuntimeAndKiln) {
  const std::string file = GetParam();
  const graph::Graph& g = testing::foreign_graph(file);
  const std::vector<Tensor> xs = testing::foreign_inputs(file);
  const Tensor want = testing::foreign_output(file);
  const std::string path = testing::temp_path(testing::test_name(file) + "_fp32.onnx");
  runtime_export::export_onnx(g, path);

  double ort_err = -1;
  if (testing::runs_in_onnx_runtime(file)) {
    testing::onnx_checker(path);
    if (auto ort = testing::run_onnx_runtime(path, xs)) {
      ort_err = testing::max_abs_diff((*ort)[0], want);
      EXPECT_LE(ort_err, 1e-4) << file << " in ONNX Runtime";
    }
  }
  graph::Graph back = runtime_export::import_onnx(path);
  const double graph_err = testing::max_abs_diff(back.run(xs)[0], want);
  const double fp32_err = testing::max_abs_diff(runtime_export::InferenceModel(back).run(xs)[0], want);
  EXPECT_LE(graph_err, 1e-4) << file << " re-imported, Graph::run";
  EXPECT_LE(fp32_err, 1e-4) << file << " re-imported, InferenceModel";
  for (const char* op : {"permute", "layer_norm", "softmax", "conv2d"}) {
    EXPECT_EQ(count_op(back, op), count_op(g, op)) << file << ": " << op << " nodes after the round trip\n" << back.to_string();
  }
  // A linear on a [L*N, E] view (torch's Gemm in nn.MultiheadAttention) is written as MatMul and
  // Add, which come back as matmul and add: the same products, spelled as Dense's.
  EXPECT_EQ(count_op(back, "linear") + count_op(back, "matmul"), count_op(g, "linear") + count_op(g, "matmul")) << file;
  std::printf("%-26s re-exported: max abs error ONNX Runtime %.3g, re-imported Graph::run %.3g, InferenceModel %.3g\n",
              file.c_str(), ort_err, graph_err, fp32_err);
}

INSTANTIATE_TEST_SUITE_P(TorchOnnxExport, ForeignOnnxReexport, ::testing::ValuesIn(testing::foreign_model_files()),
                         [](const auto& info) { return testing::test_name(info.param); });

}  // namespace
}  // namespace kiln
