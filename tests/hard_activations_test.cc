// relu6, hard_sigmoid, hard_swish and mish through every path besides the eager op (which
// eltwise_test and op_table_test check): fused into conv and dense by the inference passes and
// run as oneDNN post-ops (f32, bf16, int8), exported to ONNX and run in ONNX Runtime, imported
// back.
#include <gtest/gtest.h>

#include <cmath>

#include "graph/passes/optimize_for_inference.h"
#include "graph/trace.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"
#include "tests/onnx_round_trip.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using testing::max_abs_diff;

using runtime_export::InferenceModel;

const EltwiseKind kKinds[] = {EltwiseKind::relu6, EltwiseKind::hard_sigmoid, EltwiseKind::hard_swish,
                              EltwiseKind::mish};

std::string op_names(const graph::Graph& g) {
  std::string s;
  for (const auto& n : g.nodes) s += n.call.op() + "(" + (n.call.has("activation") ? n.call.get_string("activation") : "") + ") ";
  return s;
}

// conv -> act and dense -> act for one kind, with values on both sides of every kink.
graph::Graph conv_and_dense(EltwiseKind kind) {
  Tensor k = random_uniform({3, 3, 3, 4}, -1.5f, 1.5f, 1), b = random_uniform({4}, -1.f, 1.f, 2);
  Tensor w = random_uniform({64, 6}, -0.5f, 0.5f, 3), wb = random_uniform({6}, -1.f, 1.f, 4);
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor h = eltwise(kind, conv2d(in[0], k, b, {.padding = Padding::same}));
    Tensor f = reshape(h, {in[0].shape()[0], 64});
    return std::vector<Tensor>{eltwise(kind, linear(f, w, wb) * 3.f)};
  };
  return graph::trace(fn, {random_uniform({2, 4, 4, 3}, -2.f, 2.f, 5)}, {{"k", k}, {"b", b}, {"w", w}, {"wb", wb}});
}

TEST(HardActivations, FuseIntoConvAndDenseAsPostOps) {
  for (EltwiseKind kind : kKinds) {
    SCOPED_TRACE(eltwise_name(kind));
    graph::Graph g = conv_and_dense(kind);
    graph::Graph fused = graph::passes::optimize_for_inference(g);
    int plain_acts = 0, fused_conv = 0;
    for (const auto& n : fused.nodes) {
      if (n.call.op() == eltwise_name(kind)) ++plain_acts;
      if (n.call.op() == "fused_conv2d" && n.call.get_string("activation") == eltwise_name(kind)) ++fused_conv;
    }
    EXPECT_EQ(fused_conv, 1) << op_names(fused);
    EXPECT_EQ(plain_acts, 1) << op_names(fused);  // the dense's input went through *3: the second stays
    Tensor x = random_uniform({3, 4, 4, 3}, -2.f, 2.f, 6);
    Tensor want = g.run(x);
    EXPECT_LE(max_abs_diff(fused.run(x), want), 1e-5);
    InferenceModel m(g);
    EXPECT_EQ(m.fallback_steps({x.shape()}), kind == EltwiseKind::hard_sigmoid ? 1 : 0) << m.describe_plan({x.shape()});
    EXPECT_LE(max_abs_diff(m.run(x), want), 2e-5);
    InferenceModel half(g, {.dtype = DType::bf16});
    double largest = 0;
    for (float v : want.to_vector()) largest = std::max(largest, std::fabs(double(v)));
    EXPECT_LE(max_abs_diff(half.run(x), want), 0.02 * largest) << "bf16";
  }
}

TEST(HardActivations, DenseEpilogueFuses) {
  Tensor w = random_uniform({5, 7}, -1.f, 1.f, 7), b = random_uniform({7}, -1.f, 1.f, 8);
  for (EltwiseKind kind : kKinds) {
    SCOPED_TRACE(eltwise_name(kind));
    auto fn = [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{eltwise(kind, linear(in[0], w, b))}; };
    graph::Graph g = graph::trace(fn, {random_uniform({4, 5}, -3.f, 3.f, 9)}, {{"w", w}, {"b", b}});
    graph::Graph fused = graph::passes::optimize_for_inference(g);
    ASSERT_EQ(fused.nodes.size(), 1u) << op_names(fused);
    EXPECT_EQ(fused.nodes[0].call.get_string("activation"), eltwise_name(kind));
    Tensor x = random_uniform({6, 5}, -3.f, 3.f, 10);
    InferenceModel m(g);
    EXPECT_EQ(m.fallback_steps({x.shape()}), 0) << m.describe_plan({x.shape()});
    EXPECT_LE(max_abs_diff(m.run(x), g.run(x)), 2e-5);
  }
}

// The int8 conv applies the epilogue as a post-op chain whose last step carries the output
// scale: compared with the eager qconv2d within a quantization step.
TEST(HardActivations, Int8ConvEpilogues) {
  Tensor w = cast(random_uniform({3, 3, 4, 6}, -127.f, 127.f, 11), DType::s8);
  Tensor b = random_uniform({6}, -0.5f, 0.5f, 12);
  std::vector<float> ws = random_uniform({6}, 0.01f, 0.03f, 13).to_vector();
  for (Epilogue e : {Epilogue::relu6, Epilogue::hard_sigmoid, Epilogue::hard_swish, Epilogue::mish}) {
    SCOPED_TRACE(epilogue_name(e));
    const float out_scale = 0.05f;
    QuantizedEpilogue q{.x_scale = 0.02f, .w_scales = ws, .activation = e, .out_scale = out_scale, .out_dtype = DType::s8};
    auto fn = [&](const std::vector<Tensor>& in) {
      Tensor x8 = quantize_linear(in[0], 0.02f, 0, DType::s8);
      return std::vector<Tensor>{dequantize_linear(qconv2d(x8, w, b, Tensor(), {.padding = Padding::same}, q), out_scale, 0)};
    };
    Tensor x = random_uniform({2, 5, 5, 4}, -1.f, 1.f, 14);
    graph::Graph g = graph::trace(fn, {x}, {{"w", w}, {"b", b}});
    InferenceModel m(g, {.optimize = false});
    EXPECT_EQ(m.fallback_steps({x.shape()}), 0) << m.describe_plan({x.shape()});
    EXPECT_LE(max_abs_diff(m.run(x), g.run(x)), out_scale * 1.01);
    double largest = 0;
    for (float v : g.run(x).to_vector()) largest = std::max(largest, std::fabs(double(v)));
    EXPECT_GT(largest, 0.5) << "degenerate";
  }
}

// Exports standalone and fused forms; ONNX Runtime must agree within 1e-4, the imported graph
// within 1e-5.
void check_onnx(const graph::Graph& g, const Tensor& x, const std::string& name) {
  kiln::testing::expect_onnx_round_trip(g, {x}, name);
}

TEST(HardActivations, OnnxRoundTrip) {
  auto fn = [](const std::vector<Tensor>& in) {
    const Tensor& x = in[0];
    return std::vector<Tensor>{relu6(x * 4.f), hard_sigmoid(x * 4.f), hard_swish(x * 4.f), mish(x * 4.f),
                               clip(x, -0.5f, 0.5f)};
  };
  Tensor x = random_uniform({3, 2, 5, 4}, -2.f, 2.f, 15);
  graph::Graph g = graph::trace(fn, {x});
  check_onnx(g, x, "hard_activations");
  // Imported back as the same kinds (mish from the exporter's opset-17 expansion).
  graph::Graph back = runtime_export::import_onnx(kiln::testing::temp_path("hard_activations.onnx"));
  std::string ops = op_names(back);
  for (const char* op : {"relu6(", "hard_sigmoid(", "hard_swish(", "mish(", "clip("}) EXPECT_NE(ops.find(op), std::string::npos) << op << ": " << ops;
  Tensor image = random_uniform({2, 4, 4, 3}, -2.f, 2.f, 16);
  for (EltwiseKind kind : kKinds) {
    check_onnx(graph::passes::optimize_for_inference(conv_and_dense(kind)), image, std::string("fused_") + eltwise_name(kind));
  }
}

}  // namespace
}  // namespace kiln
