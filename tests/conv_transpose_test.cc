// conv_transpose2d and Conv2DTranspose: the op against a plain-loop double reference written
// from Keras's JAX formulation and against numbers Keras itself computed
// (testdata/upsampling), f32 and bf16, gradients by finite differences, Keras's output sizes
// and errors; the layer through config, save/load, trace, Graph::run, InferenceModel and ONNX
// (ONNX Runtime and import back).
#include <gtest/gtest.h>

#include <cmath>

#include "graph/trace.h"
#include "kiln.h"
#include "nn/layer_registry.h"
#include "tensor/ops/op_attrs.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tests/gradcheck.h"
#include "tests/onnx_round_trip.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"
#include "tests/upsampling_reference.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using testing::rand_tensor;

using kiln::testing::max_abs_diff;

struct Geometry {
  Shape x, w;
  std::array<int64_t, 2> strides, output_padding, dilation;
  bool same;
};

const std::vector<Geometry> kGeometries = {
    {{1, 4, 5, 3}, {3, 3, 2, 3}, {2, 2}, {-1, -1}, {1, 1}, true},
    {{1, 4, 5, 3}, {3, 2, 2, 3}, {2, 3}, {-1, -1}, {1, 1}, false},
    {{2, 3, 3, 2}, {3, 3, 3, 2}, {2, 2}, {1, 1}, {1, 1}, true},
    {{1, 3, 4, 2}, {2, 3, 2, 2}, {3, 2}, {2, 1}, {1, 1}, false},
    {{1, 5, 5, 2}, {3, 3, 2, 2}, {1, 1}, {-1, -1}, {2, 2}, true},
    {{1, 3, 3, 2}, {1, 1, 2, 2}, {3, 3}, {-1, -1}, {1, 1}, true},   // crops below zero: appended bias
    {{1, 4, 4, 2}, {4, 4, 2, 2}, {2, 2}, {0, 1}, {1, 1}, true},
    {{2, 2, 3, 4}, {2, 2, 5, 4}, {2, 2}, {-1, -1}, {2, 1}, false},  // dilation with stride
    {{1, 6, 5, 3}, {5, 3, 4, 3}, {1, 1}, {-1, -1}, {1, 1}, false},
};

ConvTranspose2dAttrs attrs_of(const Geometry& g) {
  ConvTranspose2dAttrs a;
  a.strides = g.strides;
  a.output_padding = g.output_padding;
  a.dilation = g.dilation;
  a.padding = g.same ? Padding::same : Padding::valid;
  return a;
}

ref::ConvTransposeParams params_of(const Geometry& g) {
  return {g.strides, g.same, g.output_padding, g.dilation};
}

TEST(ConvTranspose, MatchesKerasJaxReferenceF32AndBf16) {
  uint64_t seed = 1;
  for (const Geometry& g : kGeometries) {
    std::vector<Tensor> in{rand_tensor(g.x, seed++), rand_tensor(g.w, seed++), rand_tensor({g.w[2]}, seed++)};
    auto f = [&](const std::vector<Tensor>& t) { return conv_transpose2d(t[0], t[1], t[2], attrs_of(g)); };
    auto r = [&](const std::vector<ref::RefTensor>& t) { return ref::conv_transpose2d(t[0], t[1], &t[2], params_of(g)); };
    SCOPED_TRACE("input " + shape_str(g.x) + " kernel " + shape_str(g.w));
    testing::expect_forward_matches(f, r, in, testing::kF32, DType::f32);
    testing::expect_forward_matches(f, r, in, {6e-2, 3e-2}, DType::bf16);
    Tensor y = f(in);
    EXPECT_EQ(y.shape(), conv_transpose2d_output_shape(g.x, g.w, attrs_of(g), "test", ""));
  }
}

TEST(ConvTranspose, GradientsMatchFiniteDifferences) {
  uint64_t seed = 100;
  for (const Geometry& g : kGeometries) {
    SCOPED_TRACE("input " + shape_str(g.x) + " kernel " + shape_str(g.w));
    std::vector<Tensor> in{rand_tensor(g.x, seed++), rand_tensor(g.w, seed++), rand_tensor({g.w[2]}, seed++)};
    testing::expect_gradients_match(
        [&](const std::vector<Tensor>& t) { return conv_transpose2d(t[0], t[1], t[2], attrs_of(g)); },
        [&](const std::vector<ref::RefTensor>& t) { return ref::conv_transpose2d(t[0], t[1], &t[2], params_of(g)); }, in);
    // And without a bias.
    std::vector<Tensor> no_bias{in[0], in[1]};
    testing::expect_gradients_match(
        [&](const std::vector<Tensor>& t) { return conv_transpose2d(t[0], t[1], Tensor(), attrs_of(g)); },
        [&](const std::vector<ref::RefTensor>& t) { return ref::conv_transpose2d(t[0], t[1], nullptr, params_of(g)); },
        no_bias);
  }
}

TEST(ConvTranspose, OutputSizeIsKeras) {
  // keras/src/backend/common/backend_utils.py, _get_output_shape_given_tf_padding.
  auto keras = [](int64_t in, int64_t k, int64_t s, int64_t d, bool same, int64_t op) {
    k = (k - 1) * d + 1;
    if (!same) return (in - 1) * s + k + (op < 0 ? std::max(k, s) - k : op);
    return op < 0 ? in * s : (in - 1) * s + k % 2 + op;
  };
  for (int64_t in : {1, 2, 5, 7})
    for (int64_t k : {1, 2, 3, 4, 5})
      for (int64_t s : {1, 2, 3})
        for (int64_t d : {1, 2})
          for (bool same : {false, true})
            for (int64_t op = -1; op < s; ++op) {
              ConvTransposeSpatial p = conv_transpose_spatial(in, k, s, d, same ? Padding::same : Padding::valid, op, "t", "");
              EXPECT_EQ(p.out, keras(in, k, s, d, same, op)) << in << " " << k << " " << s << " " << d << " " << same << " " << op;
              EXPECT_GE(p.crop_begin, 0);
            }
}

TEST(ConvTranspose, BadInputNamesTheProblem) {
  Tensor x = Tensor::zeros({1, 4, 4, 3}), w = Tensor::zeros({3, 3, 2, 3});
  auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error, expected one naming '" << needle << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { conv_transpose2d(x, Tensor::zeros({3, 3, 2, 4}), Tensor()); }, "kernel input channels 4");
  expect_error([&] { conv_transpose2d(x, w, Tensor::zeros({3})); }, "bias");
  expect_error([&] { conv_transpose2d(Tensor::zeros({4, 4, 3}), w, Tensor()); }, "rank 4");
  expect_error([&] { conv_transpose2d(cast(x, DType::s32), w, Tensor()); }, "conv_transpose2d");
  expect_error([&] { conv_transpose2d(cast(x, DType::bf16), w, Tensor()); }, "dtypes differ");
  ConvTranspose2dAttrs a;
  a.strides = {2, 2};
  a.output_padding = {2, 0};
  expect_error([&] { conv_transpose2d(x, w, Tensor(), a); }, "output_padding 2 must be below the stride 2");
  a.output_padding = {-1, -1};
  a.strides = {0, 1};
  expect_error([&] { conv_transpose2d(x, w, Tensor(), a); }, "positive");
  ops::Attrs bad = to_attrs(ConvTranspose2dAttrs{});
  bad.set("output_padding", std::vector<int64_t>{1, 0});
  expect_error([&] { ops::check_attrs(bad); }, "output_padding");
  // Empty batch and zero input channels are outputs, not crashes.
  EXPECT_EQ(conv_transpose2d(Tensor::zeros({0, 4, 4, 3}), w, Tensor()).shape(), (Shape{0, 4 + 2, 4 + 2, 2}));
  Tensor b = Tensor::from_vector({0.5f, -1.f}, {2});
  Tensor y = conv_transpose2d(Tensor::zeros({1, 2, 2, 0}), Tensor::zeros({3, 3, 2, 0}), b);
  EXPECT_EQ(y.shape(), (Shape{1, 4, 4, 2}));
  EXPECT_EQ(y.to_vector()[0], 0.5f);
  EXPECT_EQ(y.to_vector()[1], -1.f);
}

// Conv2DTranspose with Keras's weights on Keras's inputs gives Keras's outputs.
TEST(Conv2DTransposeLayer, MatchesKerasOutputs) {
  struct KerasLayer {
    const char* name;
    Shape x;
    int64_t filters;
    std::array<int64_t, 2> kernel, strides;
    const char* padding;
    std::optional<std::array<int64_t, 2>> output_padding;
    std::array<int64_t, 2> dilation;
  };
  // The cases of make_keras_reference.py.
  const std::vector<KerasLayer> layers = {
      {"ct_same_s2", {1, 4, 5, 3}, 2, {3, 3}, {2, 2}, "same", std::nullopt, {1, 1}},
      {"ct_valid_s23", {1, 4, 5, 3}, 2, {3, 2}, {2, 3}, "valid", std::nullopt, {1, 1}},
      {"ct_same_op11", {2, 3, 3, 2}, 3, {3, 3}, {2, 2}, "same", std::array<int64_t, 2>{1, 1}, {1, 1}},
      {"ct_valid_op21", {1, 3, 4, 2}, 2, {2, 3}, {3, 2}, "valid", std::array<int64_t, 2>{2, 1}, {1, 1}},
      {"ct_same_dil2", {1, 5, 5, 2}, 2, {3, 3}, {1, 1}, "same", std::nullopt, {2, 2}},
      {"ct_same_k1_s3", {1, 3, 3, 2}, 2, {1, 1}, {3, 3}, "same", std::nullopt, {1, 1}},
      {"ct_same_k4_op01", {1, 4, 4, 2}, 2, {4, 4}, {2, 2}, "same", std::array<int64_t, 2>{0, 1}, {1, 1}},
  };
  std::map<std::string, ref::KerasCase> expected;
  for (const auto& c : ref::read_keras_reference("tests/testdata/upsampling/keras_reference.txt")) expected[c.name] = c;
  for (const KerasLayer& k : layers) {
    SCOPED_TRACE(k.name);
    ASSERT_TRUE(expected.count(k.name));
    Conv2DTransposeOptions opt;
    opt.strides = k.strides;
    opt.padding = k.padding;
    opt.output_padding = k.output_padding;
    opt.dilation_rate = k.dilation;
    Layer layer = Conv2DTranspose(k.filters, k.kernel, "", opt);
    Tensor x = Tensor::from_vector(ref::keras_reference_x(numel(k.x)), k.x);
    Shape kshape{k.kernel[0], k.kernel[1], k.filters, k.x[3]};
    layer(x);  // builds
    std::vector<Variable> vars = layer->variables();
    ASSERT_EQ(vars.size(), 2u);
    ASSERT_EQ(vars[0].value().shape(), kshape);  // Keras's kernel layout
    vars[0].assign(Tensor::from_vector(ref::keras_reference_kernel(numel(kshape)), kshape));
    vars[1].assign(Tensor::from_vector(ref::keras_reference_bias(k.filters), {k.filters}));
    Tensor y = layer(x);
    const ref::KerasCase& want = expected[k.name];
    ASSERT_EQ(y.shape(), want.shape);
    std::vector<float> got = y.to_vector();
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want.values[i]));
    EXPECT_LE(worst, 1e-4) << k.name;
    EXPECT_EQ(layer->compute_output_shape({k.x}), std::optional<Shape>(want.shape));
  }
}

TEST(Conv2DTransposeLayer, ParameterCountsEqualKeras) {
  // Keras: kh * kw * filters * in_channels + filters (bias).
  Sequential model({Conv2DTranspose(16, 3, "relu", {.strides = {2, 2}, .padding = "same"}),
                    Conv2DTranspose(4, {2, 5}, "", {.use_bias = false})});
  model.build({8, 8, 3});
  EXPECT_EQ(model.count_params(), (3 * 3 * 16 * 3 + 16) + (2 * 5 * 4 * 16));
}

std::shared_ptr<Sequential> small_model() {
  set_global_seed(7);
  Conv2DTransposeOptions opt{.strides = {2, 2}, .padding = "same", .output_padding = std::array<int64_t, 2>{1, 0}};
  auto model = std::make_shared<Sequential>(std::vector<Layer>{
      Conv2DTranspose(4, 3, "relu", opt, "up1"),
      Conv2DTranspose(2, {2, 3}, "", {.strides = {1, 2}, .dilation_rate = {2, 1}}, "up2")});
  model->build({5, 6, 3});
  return model;
}

TEST(Conv2DTransposeLayer, ConfigSaveLoadTraceAndInference) {
  auto model = small_model();
  Tensor x = rand_tensor({3, 5, 6, 3}, 11);
  Tensor y = model->predict(x);
  // Config round trip and Keras's config keys.
  Config c = model->layers()[0]->config();
  EXPECT_EQ(c.at("output_padding")[0].as_int(), 1);
  EXPECT_TRUE(model->layers()[1]->config().at("output_padding").is_null());
  EXPECT_EQ(layer_from_config(model->layers()[0]->class_name(), c)->config(), c);
  // Save and load.
  std::string path = testing::temp_path("conv_transpose_model.kiln");
  save_model(*model, path);
  auto loaded = load_model(path);
  EXPECT_EQ(loaded->config(), model->config());
  EXPECT_EQ(loaded->predict(x).to_vector(), y.to_vector());
  // Trace, Graph::run and the inference model at another batch size than traced.
  graph::Graph g = graph::trace(*model, rand_tensor({2, 5, 6, 3}, 12));
  EXPECT_EQ(g.run(x).to_vector(), y.to_vector());
  runtime_export::InferenceModel fast(g);
  EXPECT_LE(max_abs_diff(fast.run(x), y), 1e-5f);
  // Both run as oneDNN deconvolutions in the plan, not as eager ops.
  std::string steps = fast.describe_plan({x.shape()});
  EXPECT_NE(steps.find("conv_transpose2d: 2"), std::string::npos) << steps;
  EXPECT_EQ(steps.find("eager"), std::string::npos) << steps;
  runtime_export::InferenceModel fast_bf16(g, {.dtype = DType::bf16});
  EXPECT_LE(max_abs_diff(fast_bf16.run(x), y), 0.1f);
}

TEST(Conv2DTransposeLayer, TrainsUnderMixedPrecision) {
  set_global_seed(5);
  set_global_policy("mixed_bfloat16");
  Sequential model({Conv2DTranspose(3, 3, "relu", {.strides = {2, 2}, .padding = "same"})});
  set_global_policy("float32");
  model.build({4, 4, 2});
  model.compile(optim::Adam(0.02f), MeanSquaredError());
  Tensor x = rand_tensor({8, 4, 4, 2}, 3), y = rand_tensor({8, 8, 8, 3}, 4, 0.f, 1.f);
  History h = model.fit(data::Dataset::from_tensor_slices(x, y).batch(4), {.epochs = 5, .verbose = 0});
  EXPECT_LT(h.history["loss"].back(), h.history["loss"].front());
  EXPECT_EQ(model.variables()[0].value().dtype(), DType::f32);
}

TEST(Conv2DTransposeLayer, OnnxRuntimeAndImportRoundTrip) {
  auto model = small_model();
  graph::Graph g = graph::trace(*model, rand_tensor({2, 5, 6, 3}, 21));
  Tensor x = rand_tensor({3, 5, 6, 3}, 22);
  graph::Graph back = testing::expect_onnx_round_trip(g, {x}, "conv_transpose");
  int transposed = 0;
  for (const auto& n : back.nodes) transposed += n.call.op() == "conv_transpose2d";
  EXPECT_EQ(transposed, 2);
}

// int8 keeps the transposed convolution and the resize in float (quant/int8_support.cc):
// the convolutions around them are quantized, the model still runs and stays close to f32.
TEST(Conv2DTransposeLayer, QuantizedModelKeepsItInFloat) {
  set_global_seed(31);
  Sequential model({Conv2D(4, 3, "relu", {.padding = "same"}),
                    Conv2DTranspose(4, 3, "relu", {.strides = {2, 2}, .padding = "same"}),
                    UpSampling2D({2, 2}, "bilinear"), Conv2D(2, 3, "", {.padding = "same"})});
  model.build({6, 6, 3});
  Tensor x = rand_tensor({16, 6, 6, 3}, 32);
  auto q = quant::quantize(model, data::Dataset::from_tensor_slices(x).batch(8));
  Tensor want = model.predict(x), got = q->predict(x);
  float scale = 0;
  for (float v : want.to_vector()) scale = std::max(scale, std::fabs(v));
  EXPECT_LE(max_abs_diff(got, want), 0.05f * scale);
  int float_nodes = 0, int8_convs = 0;
  for (const auto& n : q->inference_graph().nodes) {
    float_nodes += n.call.op() == "conv_transpose2d" || n.call.op() == "resize2d";
    int8_convs += n.call.op() == "qconv2d";
  }
  EXPECT_EQ(float_nodes, 2);
  EXPECT_EQ(int8_convs, 2);
}

// Every Keras geometry above exports to a ConvTranspose ONNX Runtime agrees with, and imports
// back to the same Kiln attributes (one model holding every case, so ONNX Runtime starts once).
TEST(ConvTranspose, EveryGeometryExportsAndImports) {
  uint64_t seed = 300;
  std::vector<Tensor> ws, bs, xs;
  for (const Geometry& geo : kGeometries) {
    ws.push_back(rand_tensor(geo.w, seed++));
    bs.push_back(rand_tensor({geo.w[2]}, seed++));
    Shape x = geo.x;
    x[0] = 2;  // one batch size for every input of the model
    xs.push_back(rand_tensor(x, seed++));
  }
  auto fn = [&](const std::vector<Tensor>& in) {
    std::vector<Tensor> out;
    for (size_t i = 0; i < in.size(); ++i) out.push_back(conv_transpose2d(in[i], ws[i], bs[i], attrs_of(kGeometries[i])));
    return out;
  };
  graph::Graph g = graph::trace(fn, xs);
  std::string path = testing::temp_path("conv_transpose_geometries.onnx");
  runtime_export::export_onnx(g, path);
  auto ort = testing::run_onnx_runtime(path, xs);
  ASSERT_TRUE(ort.has_value());
  std::vector<Tensor> want = g.run(xs), back = runtime_export::import_onnx(path).run(xs);
  ASSERT_EQ(ort->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE("input " + shape_str(kGeometries[i].x) + " kernel " + shape_str(kGeometries[i].w));
    EXPECT_LE(max_abs_diff((*ort)[i], want[i]), 1e-4f);
    EXPECT_LE(max_abs_diff(back[i], want[i]), 1e-5f);
  }
}

}  // namespace
}  // namespace kiln
