// quant::quantize_graph on the models: which nodes become int8, that data stays int8
// between int8 layers (one quantize at the input, no dequantize before the head), that
// keep_float is honoured, and that the int8 model agrees with the f32 one.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "graph/trace.h"
#include "nn/applications/applications.h"
#include "quant/quantize_graph.h"
#include "runtime_export/inference_model.h"
#include "graph/passes/optimize_for_inference.h"
#include "tensor/ops/ops.h"
#include "tensor/ops/registry.h"
#include "tensor/random.h"

namespace kiln {
namespace {

int count(const graph::Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes) n += node.call.op() == op;
  return n;
}

// Min/max of every float value over one batch (what a minmax calibration gives).
std::map<int, quant::ActivationQuant> minmax(const graph::Graph& g, const Tensor& x) {
  std::vector<Tensor> env(g.values.size());
  env[g.inputs[0]] = x;
  for (const auto& c : g.constants) env[c.value] = c.tensor;
  std::map<int, quant::ActivationQuant> out;
  auto note = [&](int v) {
    if (env[v].dtype() != DType::f32) return;
    double lo = 0, hi = 0;
    for (float e : env[v].to_vector()) lo = std::min<double>(lo, e), hi = std::max<double>(hi, e);
    bool unsigned_ = lo >= 0;
    double t = std::max(std::fabs(lo), hi);
    out[v] = {unsigned_ ? DType::u8 : DType::s8, static_cast<float>(std::max(t, 1e-6) / (unsigned_ ? 255 : 127))};
  };
  note(g.inputs[0]);
  for (const auto& n : g.nodes) {
    std::vector<Tensor> args;
    for (int i : n.inputs) args.push_back(env[i]);
    auto res = ops::run_op(n.call, args);
    for (size_t j = 0; j < res.size(); ++j) env[n.outputs[j]] = res[j];
    for (int o : n.outputs) note(o);
  }
  return out;
}

double agreement(const Tensor& a, const Tensor& b) {
  std::vector<int32_t> x = argmax(a, -1).to_int32(), y = argmax(b, -1).to_int32();
  int same = 0;
  for (size_t i = 0; i < x.size(); ++i) same += x[i] == y[i];
  return double(same) / x.size();
}

TEST(QuantizeGraph, KerasCnnRunsInt8FromInputToLogits) {
  set_global_seed(1);
  auto model = nn::applications::keras_cnn();
  Tensor calib = cast(random_uniform({64, 28, 28, 1}, 0.f, 255.f, 2), DType::u8);
  graph::Graph g = graph::passes::optimize_for_inference(graph::trace(*model, calib));
  graph::Graph q = quant::quantize_graph(g, minmax(g, calib));
  EXPECT_EQ(count(q, "qconv2d"), 3) << q.to_string();
  EXPECT_EQ(count(q, "qlinear"), 2);
  EXPECT_EQ(count(q, "conv2d") + count(q, "fused_conv2d") + count(q, "linear") + count(q, "fused_linear"), 0);
  EXPECT_EQ(count(q, "quantize_linear"), 1);    // at the input only
  EXPECT_EQ(count(q, "dequantize_linear"), 0);  // the head writes f32 itself
  for (const auto& n : q.nodes) {
    if (n.call.op() == "max_pool2d") EXPECT_EQ(q.values[n.inputs[0]].dtype, DType::u8);
  }
  runtime_export::InferenceModel f32(g, {.optimize = false}), int8(q, {.optimize = false});
  Tensor x = cast(random_uniform({32, 28, 28, 1}, 0.f, 255.f, 3), DType::u8);
  EXPECT_EQ(int8.fallback_steps({x.shape()}), 0) << int8.describe_plan({x.shape()});
  Tensor a = f32.run(x), b = int8.run(x), e = q.run(x);
  std::cout << "cnn int8/f32 top-1 agreement " << agreement(a, b) << "\n";
  EXPECT_GE(agreement(a, b), 0.95);
  double worst = 0, scale = 0;
  std::vector<float> av = a.to_vector(), bv = b.to_vector(), ev = e.to_vector();
  for (size_t i = 0; i < av.size(); ++i) {
    worst = std::max(worst, std::fabs(double(bv[i]) - double(ev[i])));
    scale = std::max(scale, std::fabs(double(av[i])));
  }
  EXPECT_LE(worst, 0.05 * scale) << "int8 kernels drift from the eager quantized graph";
}

TEST(QuantizeGraph, ResNetKeepsResidualsInInt8AndKeepFloatIsHonoured) {
  set_global_seed(2);
  auto model = nn::applications::resnet18({16, 16, 3});
  Tensor calib = random_uniform({8, 16, 16, 3}, -1.f, 1.f, 4);
  graph::Graph g = graph::passes::optimize_for_inference(graph::trace(*model, calib));
  auto ranges = minmax(g, calib);
  graph::Graph q = quant::quantize_graph(g, ranges);
  EXPECT_EQ(count(q, "qconv2d"), 20) << q.to_string();
  EXPECT_EQ(count(q, "quantize_linear"), 2);  // the input, and the head after the f32 average pool
  std::vector<int> candidates = quant::quantizable_nodes(g);
  ASSERT_EQ(candidates.size(), 21u);
  graph::Graph partly = quant::quantize_graph(g, ranges, {.keep_float = {candidates[0]}});
  EXPECT_EQ(count(partly, "qconv2d"), 19);
  EXPECT_EQ(count(partly, "conv2d") + count(partly, "fused_conv2d"), 1);
  runtime_export::InferenceModel f32(g, {.optimize = false}), int8(q, {.optimize = false});
  Tensor x = random_uniform({16, 16, 16, 3}, -1.f, 1.f, 5);
  EXPECT_EQ(int8.fallback_steps({x.shape()}), 0) << int8.describe_plan({x.shape()});
  double agree = agreement(f32.run(x), int8.run(x));
  std::cout << "resnet18 int8/f32 top-1 agreement " << agree << "\n";
  EXPECT_GE(agree, 0.9);
}

// The parameters quantize_graph writes into nodes go through the same check as a graph
// file's (tensor/ops/quantized.h): non-finite, zero or negative scales and non-int8 dtypes
// are refused naming the value, as are weights that are not finite.
TEST(QuantizeGraph, InvalidParametersAreRefusedNamingTheValue) {
  Tensor w = random_uniform({4, 3}, -1.f, 1.f, 5), b = random_uniform({3}, -1.f, 1.f, 6);
  auto traced = [&](const Tensor& weights) {
    return graph::trace([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{linear(in[0], weights, b)}; },
                        {random_uniform({2, 4}, -1.f, 1.f, 7)}, {{"w", weights}, {"b", b}});
  };
  graph::Graph g = traced(w);
  Tensor x = random_uniform({8, 4}, -1.f, 1.f, 8);
  std::map<int, quant::ActivationQuant> good = minmax(g, x);
  ASSERT_EQ(count(quant::quantize_graph(g, good), "qlinear"), 1);
  auto expect_refused = [&](const graph::Graph& graph, const std::map<int, quant::ActivationQuant>& params,
                            const std::string& fragment) {
    try {
      quant::quantize_graph(graph, params);
      ADD_FAILURE() << "accepted; expected an error naming " << fragment;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  const int input = g.inputs[0];
  const std::string input_name = "value '" + g.values[input].name + "'";
  for (float bad : {INFINITY, -1.f, 0.f, NAN}) {
    auto params = good;
    params[input].scale = bad;
    expect_refused(g, params, input_name + " scale");
  }
  auto f32_params = good;
  f32_params[input].dtype = DType::f32;
  expect_refused(g, f32_params, "dtype must be u8 or s8");
  Tensor w_inf = w.clone_detached();
  w_inf.data<float>()[0] = INFINITY;
  graph::Graph g_inf = traced(w_inf);
  expect_refused(g_inf, minmax(g, x), "non-finite value (inf) in channel 0");
}

}  // namespace
}  // namespace kiln
