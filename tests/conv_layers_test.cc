// Keras 3's DepthwiseConv2D, SeparableConv2D and Conv1D: outputs and parameter counts against
// Keras (kKeras* come from tests/testdata/keras_conv_layers.py), then each through every path a
// layer takes: save/load, trace + Graph::run, the inference plan, ONNX export run by ONNX
// Runtime and imported back, and int8 quantization.
#include <gtest/gtest.h>

#include <cmath>

#include "graph/trace.h"
#include "kiln.h"
#include "quant/quantize.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using namespace kiln::nn;

// DepthwiseConv2D: 60 parameters, output [1, 4, 3, 6]
const std::vector<float> kKerasDepthwiseConv2D = {0.631021f, 1.21852f, 1.18059f, 1.58267f, 1.37109f, 1.55103f, -1.22266f, -1.22096f, -0.923017f, -1.08326f, -1.04895f, -1.39213f, 1.93515f, 2.13116f, 2.42347f, 2.39776f, 2.46956f, 2.17885f, 2.08188f, 2.31364f, 2.45863f, 2.42145f, 2.26284f, 1.95592f, -1.06508f, -0.399837f, -0.281594f, 0.22664f, 0.0857598f, 0.360842f, 0.402523f, 0.305424f, 0.538036f, 0.292188f, 0.431916f, 0.023946f, 1.63571f, 1.72228f, 2.10646f, 1.93343f, 1.96547f, 1.50452f, 0.117168f, 0.837673f, 0.843383f, 1.40956f, 1.26566f, 1.60578f, -0.259118f, -0.253959f, -0.136213f, -0.299641f, -0.355062f, -0.678423f, -0.463035f, -0.459356f, -0.109991f, -0.26112f, -0.116635f, -0.462355f, 2.72822f, 3.01183f, 3.14124f, 3.1842f, 3.12774f, 2.90867f, -0.742694f, -0.229832f, -0.159251f, 0.174474f, -0.0249361f, 0.0894287f};
// SeparableConv2D: 64 parameters, output [1, 3, 3, 4]
const std::vector<float> kKerasSeparableConv2D = {2.69729f, 3.36457f, 3.56264f, 3.27276f, 1.08106f, 1.30051f, 1.28705f, 1.04617f, 0.f, 0.f, 0.f, 0.f, 2.65798f, 3.31316f, 3.50501f, 3.2155f, 2.32651f, 2.89134f, 3.04114f, 2.76269f, 0.345637f, 0.360758f, 0.250577f, 0.0316356f, 1.68516f, 2.06926f, 2.13244f, 1.87141f, 2.80878f, 3.50645f, 3.71867f, 3.42507f, 1.74736f, 2.1517f, 2.22569f, 1.9648f};
// Conv1D: 21 parameters, output [2, 6, 3]
const std::vector<float> kKerasConv1D = {0.379134f, 0.527493f, 0.602034f, 0.472732f, 0.377339f, 0.216036f, 1.06547f, 0.856784f, 0.556936f, 2.17221f, 2.07321f, 1.81899f, 2.6818f, 2.97779f, 3.07092f, 2.20919f, 3.06265f, 3.70878f, 0.41018f, 1.09866f, 1.68324f, 0.345033f, 0.920725f, 1.40189f, -1.478f, -1.06492f, -0.641803f, -0.924459f, -0.853988f, -0.784577f, -0.260751f, -0.811583f, -1.36571f, 1.3353f, 0.865731f, 0.304534f};

// The generator's fill: sin(a * i + b) over the flat index.
Tensor fill(const Shape& shape, double a, double b) {
  std::vector<float> v(numel(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(std::sin(a * static_cast<double>(i) + b));
  return Tensor::from_vector(v, shape);
}

using kiln::testing::max_abs_diff;

void expect_keras_output(Layer layer, const Shape& x_shape, const std::vector<float>& want, int64_t params) {
  Tensor x = fill(x_shape, 0.37, 0.1);
  layer(x);  // builds
  std::vector<Variable> vars = layer->variables();
  for (size_t k = 0; k < vars.size(); ++k) vars[k].assign(fill(vars[k].value().shape(), 0.23 + 0.11 * k, 0.5 * k));
  int64_t count = 0;
  for (const Variable& v : vars) count += v.value().numel();
  EXPECT_EQ(count, params);
  std::vector<float> got = layer(x).to_vector();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 2e-5f + 2e-5f * std::fabs(want[i])) << i;
}

TEST(ConvLayers, MatchKerasOutputsAndParameterCounts) {
  expect_keras_output(DepthwiseConv2D(3, "", {.strides = {1, 2}, .padding = "same", .depth_multiplier = 2}), {1, 4, 5, 3},
                      kKerasDepthwiseConv2D, 60);
  expect_keras_output(SeparableConv2D(4, {2, 3}, "relu", {.depth_multiplier = 2}), {1, 4, 5, 3}, kKerasSeparableConv2D, 64);
  expect_keras_output(Conv1D(3, 3, "", {.padding = "causal", .dilation_rate = 2}), {2, 6, 2}, kKerasConv1D, 21);
  // Parameter counts Keras 3.15.1 gives for these layers and inputs.
  auto params = [](Layer layer, const Shape& in) {
    auto model = std::make_shared<Sequential>(std::vector<Layer>{layer});
    model->build(in);
    return model->count_params();
  };
  EXPECT_EQ(params(DepthwiseConv2D(3, "", {.use_bias = false}), {8, 8, 32}), 288);
  EXPECT_EQ(params(DepthwiseConv2D({3, 5}, "", {.depth_multiplier = 4}), {9, 9, 7}), 448);
  EXPECT_EQ(params(SeparableConv2D(64, 3), {8, 8, 32}), 2400);
  EXPECT_EQ(params(Conv1D(16, 5, "", {.groups = 4}), {9, 8}), 176);
  // Weight names and layouts, as Keras 3 has them.
  Layer dw = DepthwiseConv2D(3, "", {.depth_multiplier = 2});
  dw(Tensor::zeros({1, 5, 5, 3}));
  ASSERT_EQ(dw->variables().size(), 2u);
  EXPECT_NE(dw->variables()[0].name().find("kernel"), std::string::npos) << dw->variables()[0].name();
  EXPECT_EQ(dw->variables()[0].value().shape(), (Shape{3, 3, 3, 2}));
  Layer sep = SeparableConv2D(4, 3, "", {.depth_multiplier = 2});
  sep(Tensor::zeros({1, 5, 5, 3}));
  ASSERT_EQ(sep->variables().size(), 3u);
  EXPECT_NE(sep->variables()[0].name().find("depthwise_kernel"), std::string::npos);
  EXPECT_NE(sep->variables()[1].name().find("pointwise_kernel"), std::string::npos);
  EXPECT_EQ(sep->variables()[1].value().shape(), (Shape{1, 1, 6, 4}));
}

std::shared_ptr<Model> image_model() {
  SymbolicTensor in = Input({12, 11, 4});
  SymbolicTensor h = DepthwiseConv2D(3, "relu", {.strides = {2, 2}, .padding = "same"}, "dw")(in);
  h = DepthwiseConv2D({3, 2}, "", {.depth_multiplier = 2, .dilation_rate = {2, 1}}, "dw_dm2")(h);
  h = SeparableConv2D(6, 3, "relu", {.padding = "same", .depth_multiplier = 2}, "sep")(h);
  SymbolicTensor out = Dense(3, "", {}, "head")(GlobalAveragePooling2D(false, "gap")(h));
  return std::make_shared<Model>(in, out, "depthwise_net");
}

std::shared_ptr<Model> sequence_model() {
  SymbolicTensor in = Input({10, 4});
  SymbolicTensor h = Conv1D(8, 3, "relu", {.padding = "causal", .dilation_rate = 2}, "causal")(in);
  h = Conv1D(6, 3, "", {.strides = 2, .padding = "same", .groups = 2}, "grouped")(h);
  h = Conv1D(5, 2, "tanh", {}, "valid")(h);
  SymbolicTensor out = Dense(2, "", {}, "head")(Flatten("flat")(h));
  return std::make_shared<Model>(in, out, "conv1d_net");
}

// Every path a model takes: save/load, trace + Graph::run, the inference plan, ONNX export
// (checker, ONNX Runtime) and import, int8 quantization.
void check_paths(Model& model, const Shape& example, const std::string& name, int convs) {
  Shape traced{2}, other{3};
  traced.insert(traced.end(), example.begin(), example.end());
  other.insert(other.end(), example.begin(), example.end());
  Tensor x = random_uniform(other, -1.f, 1.f, 2);
  const Tensor want = model.predict(x);

  const std::string saved = testing::temp_path(name + ".kiln");
  save_model(model, saved);
  EXPECT_EQ(max_abs_diff(load_model(saved)->predict(x), want), 0.f) << name << " save/load";

  graph::Graph g = graph::trace(model, random_uniform(traced, -1.f, 1.f, 1));
  EXPECT_LE(max_abs_diff(g.run(x), want), 1e-5f) << name << " Graph::run";
  runtime_export::InferenceModel plan(g);
  EXPECT_LE(max_abs_diff(plan.run(x), want), 1e-5f) << name << " inference plan";

  const std::string onnx = testing::temp_path(name + ".onnx");
  runtime_export::export_onnx(g, onnx);
  testing::onnx_checker(onnx);
  if (auto ort = testing::run_onnx_runtime(onnx, {x})) {
    ASSERT_EQ(ort->size(), 1u);
    float diff = max_abs_diff((*ort)[0], want);
    std::printf("%s: ONNX Runtime vs Kiln max abs diff %.3g\n", name.c_str(), diff);
    EXPECT_LE(diff, 1e-4f) << name << " ONNX Runtime";
  }
  EXPECT_LE(max_abs_diff(runtime_export::import_onnx(onnx).run(x), want), 1e-5f) << name << " ONNX import";

  Tensor calib = random_uniform({64}, -1.f, 1.f, 3);
  Shape calib_shape{64};
  calib_shape.insert(calib_shape.end(), example.begin(), example.end());
  auto int8 = quant::quantize(model, data::Dataset::from_tensor_slices(random_uniform(calib_shape, -1.f, 1.f, 3)).batch(16),
                              {.verbose = false});
  int qconvs = 0;
  for (const auto& n : int8->inference_graph().nodes) qconvs += n.call.op() == "qconv2d";
  EXPECT_EQ(qconvs, convs) << int8->inference_graph().to_string();
  float scale = 0;
  for (float v : want.to_vector()) scale = std::max(scale, std::fabs(v));
  float diff = max_abs_diff(int8->predict(x), want);
  std::printf("%s: int8 vs f32 max abs diff %.3g (output scale %.3g)\n", name.c_str(), diff, scale);
  EXPECT_LE(diff, 0.1f * scale + 1e-3f) << name << " int8";
}

TEST(ConvLayers, DepthwiseAndSeparableThroughEveryPath) {
  set_global_seed(3);
  auto model = image_model();
  model->build({12, 11, 4});
  // dw: 3*3*4 + 4; dw_dm2: 3*2*4*2 + 8; sep: 3*3*8*2 + 16*6 + 6; head: 6*3 + 3 (Keras counts).
  EXPECT_EQ(model->count_params(), 40 + 56 + 246 + 21);
  check_paths(*model, {12, 11, 4}, "depthwise_net", 4);  // the separable layer is two convs
}

TEST(ConvLayers, Conv1DThroughEveryPath) {
  set_global_seed(4);
  auto model = sequence_model();
  model->build({10, 4});
  // causal: 3*4*8 + 8; grouped: 3*4*6 + 6; valid: 2*6*5 + 5; head: 20*2 + 2.
  EXPECT_EQ(model->count_params(), 104 + 78 + 65 + 42);
  check_paths(*model, {10, 4}, "conv1d_net", 3);
}

TEST(ConvLayers, TrainingReachesEveryKernel) {
  set_global_seed(5);
  for (auto model : {image_model(), sequence_model()}) {
    SCOPED_TRACE(model->name());
    const bool image = model->name() == "depthwise_net";
    Tensor x = random_uniform(image ? Shape{4, 12, 11, 4} : Shape{4, 10, 4}, -1.f, 1.f, 6);
    GradientTape tape;
    Tensor y = model->call({x}, true)[0];
    std::vector<Variable> vars = model->trainable_variables();
    std::vector<Tensor> sources;
    for (const Variable& v : vars) sources.push_back(v.value());
    std::vector<Tensor> grads = tape.gradient(reduce_sum(y * y), sources);
    ASSERT_EQ(grads.size(), vars.size());
    for (size_t i = 0; i < grads.size(); ++i) {
      ASSERT_TRUE(grads[i].defined()) << vars[i].name();
      EXPECT_EQ(grads[i].shape(), vars[i].value().shape()) << vars[i].name();
      float norm = 0;
      for (float v : grads[i].to_vector()) norm += v * v;
      EXPECT_GT(norm, 0.f) << vars[i].name();
    }
  }
}

TEST(ConvLayers, BadArgumentsAreClearErrors) {
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([] { Conv1D(4, 3, "", {.strides = 2, .dilation_rate = 2}); }).find("dilation_rate > 1"), std::string::npos);
  EXPECT_NE(message([] { Conv1D(4, 3, "", {.padding = "full"}); }).find("'causal'"), std::string::npos);
  EXPECT_NE(message([] { Conv1D(4, 3)(Tensor::zeros({2, 5, 5, 3})); }).find("[2, 5, 5, 3]"), std::string::npos);
  EXPECT_NE(message([] { DepthwiseConv2D(3, "", {.depth_multiplier = 0}); }).find("depth_multiplier"), std::string::npos);
  EXPECT_NE(message([] { DepthwiseConv2D(3)(Tensor::zeros({2, 5, 3})); }).find("[2, 5, 3]"), std::string::npos);
  EXPECT_NE(message([] { SeparableConv2D(4, 3, "", {.padding = "causal"}); }).find("causal"), std::string::npos);
  EXPECT_NE(message([] { DepthwiseConv2D(5)(Tensor::zeros({1, 3, 3, 2})); }).find("does not fit"), std::string::npos);
}

}  // namespace
}  // namespace kiln
