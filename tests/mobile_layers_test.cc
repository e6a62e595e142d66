// The layers issue 21 adds for mobile CNNs besides convolutions: ReLU(max_value,
// negative_slope, threshold), Activation's hard functions, GlobalMaxPooling2D, the merge layers
// (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate) and Reshape / Permute.
// Each against a double-precision reference (ReLU also against numbers Keras 3.15.1 printed),
// with gradients; then one functional model holding all of them through save/load, trace,
// Graph::run, InferenceModel and ONNX (ONNX Runtime, import back). Layer configs round trip in
// layer_config_test.
#include <gtest/gtest.h>

#include <cmath>

#include "base/files.h"
#include "graph/trace.h"
#include "kiln.h"
#include "nn/layer_registry.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tests/gradcheck.h"
#include "tests/onnx_round_trip.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using testing::max_abs_diff;

using namespace kiln::nn;
using testing::expect_forward_matches;
using testing::expect_gradients_match;
using testing::rand_tensor;

// Layers compute in their policy's dtype: bf16 checks run them under this one.
constexpr const char* kBf16Policy = "mixed_bfloat16";

// Keras's definition: max_value above it, x above the threshold, else slope * (x - threshold).
double keras_relu_ref(double x, std::optional<double> max_value, double slope, double threshold) {
  if (max_value && x >= *max_value) return *max_value;
  if (x > threshold) return x;
  return slope * (x - threshold);
}

TEST(ReLULayer, MatchesKerasNumbers) {
  // keras.layers.ReLU(**args)(x) on Keras 3.15.1 (jax backend).
  Tensor x = Tensor::from_vector({-3.f, -1.f, -0.25f, 0.f, 0.3f, 0.5f, 1.f, 2.5f, 4.f, 7.f}, {10});
  struct Case {
    std::optional<float> max_value;
    float slope, threshold;
    std::vector<float> keras;
  };
  const Case cases[] = {
      {std::nullopt, 0.1f, 0.5f, {-0.35f, -0.15f, -0.075f, -0.05f, -0.02f, 0.f, 1.f, 2.5f, 4.f, 7.f}},
      {2.f, 0.2f, 0.5f, {-0.7f, -0.3f, -0.15f, -0.1f, -0.04f, 0.f, 1.f, 2.f, 2.f, 2.f}},
      {6.f, 0.3f, 0.f, {-0.9f, -0.3f, -0.075f, 0.f, 0.3f, 0.5f, 1.f, 2.5f, 4.f, 6.f}},
      {3.f, 0.f, 1.f, {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 2.5f, 3.f, 3.f}},
  };
  for (const Case& c : cases) {
    std::vector<float> got = ReLU(c.max_value, c.slope, c.threshold)(x).to_vector();
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], c.keras[i], 1e-6) << i << " slope " << c.slope;
  }
}

TEST(ReLULayer, EveryFormAgainstTheReferenceWithGradients) {
  struct Form {
    std::optional<float> max_value;
    float slope, threshold;
  };
  for (Form f : {Form{std::nullopt, 0.f, 0.f}, Form{6.f, 0.f, 0.f}, Form{2.5f, 0.f, 0.f}, Form{std::nullopt, 0.2f, 0.f},
                 Form{4.f, 0.1f, 0.7f}, Form{std::nullopt, 0.3f, 1.1f}, Form{6.f, 0.25f, 0.f}}) {
    SCOPED_TRACE(std::to_string(f.max_value.value_or(-1)) + " " + std::to_string(f.slope) + " " + std::to_string(f.threshold));
    auto kiln_fn = [&](const std::vector<Tensor>& in) { return keras_relu(in[0], f.max_value, f.slope, f.threshold); };
    auto ref_fn = [&](const std::vector<ref::RefTensor>& in) {
      std::optional<double> m;
      if (f.max_value) m = *f.max_value;
      return ref::unary(in[0], [&](double v) { return keras_relu_ref(v, m, f.slope, f.threshold); });
    };
    Tensor x = rand_tensor({4, 33}, 3, -3.f, 7.f);
    expect_forward_matches(kiln_fn, ref_fn, {x}, testing::kF32);
    expect_forward_matches(kiln_fn, ref_fn, {x}, testing::kBf16, DType::bf16);
    expect_gradients_match(kiln_fn, ref_fn, {rand_tensor({3, 7}, 4, -3.f, 7.f)});
  }
  // The plain forms are the single ops.
  Layer relu6_layer = ReLU(6.f);
  graph::Graph g = graph::trace([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{relu6_layer(in[0])}; },
                                {rand_tensor({2, 3}, 5)});
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].call.op(), "relu6");
}

TEST(ReLULayer, BadArgumentsAreErrors) {
  EXPECT_THROW(ReLU(-1.f), std::invalid_argument);
  EXPECT_THROW(ReLU(std::nullopt, -0.1f), std::invalid_argument);
  EXPECT_THROW(ReLU(std::nullopt, 0.f, -1.f), std::invalid_argument);
  EXPECT_THROW(ReLU(std::nanf("")), std::invalid_argument);
  EXPECT_THROW(layer_from_config("ReLU", parse_config_json(R"({"max_value": -2})", "x")), std::invalid_argument);
  Layer l = layer_from_config("ReLU", parse_config_json(R"({"max_value": null, "negative_slope": 0.5})", "x"));
  EXPECT_TRUE(l->config().at("max_value").is_null());
  EXPECT_EQ(ReLU(6.f)->config().at("max_value").as_number(), 6.0);
}

TEST(ActivationNames, HardFunctionsByKerasName) {
  Tensor x = rand_tensor({3, 5}, 6, -5.f, 5.f);
  EXPECT_EQ(max_abs_diff(Activation("relu6")(x), relu6(x)), 0.0);
  EXPECT_EQ(max_abs_diff(Activation("hard_sigmoid")(x), hard_sigmoid(x)), 0.0);
  EXPECT_EQ(max_abs_diff(Activation("hard_silu")(x), hard_swish(x)), 0.0);
  EXPECT_EQ(max_abs_diff(Activation("hard_swish")(x), hard_swish(x)), 0.0);
  EXPECT_EQ(max_abs_diff(Activation("mish")(x), mish(x)), 0.0);
  EXPECT_EQ(Dense(4, "hard_silu")(x).shape(), Shape({3, 4}));
  EXPECT_THROW(Activation("hard_tanh"), std::invalid_argument);
}

TEST(GlobalMaxPooling, ForwardGradientAndKeepdims) {
  auto r = [](bool keepdims) {
    return [keepdims](const std::vector<ref::RefTensor>& in) {
      return ref::reduce(in[0], {1, 2}, keepdims, ref::Reduce::max);
    };
  };
  for (bool keepdims : {false, true}) {
    auto f = [&](const std::vector<Tensor>& in) { return GlobalMaxPooling2D(keepdims)(in[0]); };
    auto f16 = [&](const std::vector<Tensor>& in) { return GlobalMaxPooling2D(keepdims).with_policy(kBf16Policy)(in[0]); };
    Tensor x = rand_tensor({2, 5, 3, 4}, 7);
    expect_forward_matches(f, r(keepdims), {x}, testing::kF32);
    expect_forward_matches(f16, r(keepdims), {x}, testing::kBf16, DType::bf16);
    expect_gradients_match(f, r(keepdims), {rand_tensor({2, 3, 2, 3}, 8)});
    EXPECT_EQ(GlobalMaxPooling2D(keepdims)->compute_output_shape({{2, 5, 3, 4}}),
              keepdims ? Shape({2, 1, 1, 4}) : Shape({2, 4}));
  }
  EXPECT_THROW(GlobalMaxPooling2D()(rand_tensor({2, 3, 4}, 9)), std::invalid_argument);
  EXPECT_THROW(global_max_pool2d(Tensor::zeros({2, 0, 3, 4})), std::invalid_argument);
}

// Keras's merge semantics: NumPy broadcasting past the batch; a lower rank gains its 1s right
// after the batch.
TEST(MergeLayers, ElementwiseWithBroadcastingAgainstTheReference) {
  using Fn = double (*)(double, double);
  struct M {
    const char* name;
    Layer (*make)(const std::string&);
    Fn step;
  };
  const M merges[] = {
      {"Add", Add, [](double a, double b) { return a + b; }},
      {"Subtract", Subtract, [](double a, double b) { return a - b; }},
      {"Multiply", Multiply, [](double a, double b) { return a * b; }},
      {"Maximum", Maximum, [](double a, double b) { return std::max(a, b); }},
      {"Minimum", Minimum, [](double a, double b) { return std::min(a, b); }},
  };
  for (const M& m : merges) {
    SCOPED_TRACE(m.name);
    for (auto shapes : std::vector<std::pair<Shape, Shape>>{{{2, 4, 3, 5}, {2, 1, 1, 5}}, {{2, 3, 5}, {2, 3, 5}}}) {
      auto f = [&](const std::vector<Tensor>& in) { return m.make("")(in); };
      auto f16 = [&](const std::vector<Tensor>& in) { return m.make("").with_policy(kBf16Policy)(in); };
      auto r = [&](const std::vector<ref::RefTensor>& in) { return ref::binary(in[0], in[1], m.step); };
      std::vector<Tensor> xs{rand_tensor(shapes.first, 10), rand_tensor(shapes.second, 11)};
      expect_forward_matches(f, r, xs, testing::kF32);
      expect_forward_matches(f16, r, xs, testing::kBf16, DType::bf16);
      expect_gradients_match(f, r, {rand_tensor(shapes.first, 12), rand_tensor(shapes.second, 13)});
    }
  }
  // Three inputs, and a rank-2 input against rank 4 (Keras expands at axis 1: [2, 5] -> [2, 1, 1, 5]).
  Tensor a = rand_tensor({2, 4, 3, 5}, 14), b = rand_tensor({2, 5}, 15), c = rand_tensor({2, 4, 3, 5}, 16);
  Tensor want = (a + reshape(b, {2, 1, 1, 5}) + c) / 3.f;
  EXPECT_LE(max_abs_diff(Average()({a, b, c}), want), 1e-6);
  EXPECT_EQ(Average()->compute_output_shape({{2, 4, 3, 5}, {2, 5}, {2, 4, 3, 5}}), Shape({2, 4, 3, 5}));
  EXPECT_LE(max_abs_diff(Multiply()({a, b, c}), a * reshape(b, {2, 1, 1, 5}) * c), 1e-6);
  // Errors name the layer and the shapes.
  EXPECT_THROW(Subtract()({a, a, a}), std::invalid_argument);
  EXPECT_THROW(Multiply()({a, rand_tensor({2, 4, 3, 4}, 17)}), std::invalid_argument);
  EXPECT_THROW(Maximum()({a, rand_tensor({3, 4, 3, 5}, 18)}), std::invalid_argument);
  EXPECT_EQ(Multiply()->compute_output_shape({{2, 4, 3, 5}, {2, 4, 3, 4}}), std::nullopt);
  try {
    Minimum("mn")({a, rand_tensor({2, 2, 5}, 19)});
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'mn'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 2, 5]"), std::string::npos) << e.what();
  }
}

TEST(MergeLayers, Concatenate) {
  Tensor a = rand_tensor({2, 3, 4}, 20), b = rand_tensor({2, 3, 2}, 21), c = rand_tensor({2, 1, 4}, 22);
  auto f = [](int axis, const char* policy = "float32") {
    return [axis, policy](const std::vector<Tensor>& in) { return Concatenate(axis).with_policy(policy)(in); };
  };
  auto r = [](int axis) { return [axis](const std::vector<ref::RefTensor>& in) { return ref::concat(in, axis); }; };
  expect_forward_matches(f(-1), r(2), {a, b}, testing::kF32);
  expect_forward_matches(f(1, kBf16Policy), r(1), {a, c, a}, testing::kBf16, DType::bf16);
  expect_gradients_match(f(-1), r(2), {a, b});
  EXPECT_EQ(Concatenate(1)->compute_output_shape({{2, 3, 4}, {2, 1, 4}}), Shape({2, 4, 4}));
  EXPECT_THROW(Concatenate(-1)({a, c}), std::invalid_argument);
  EXPECT_THROW(Concatenate(3)({a, a}), std::invalid_argument);
  EXPECT_THROW(Concatenate()({a, rand_tensor({2, 12}, 23)}), std::invalid_argument);
}

TEST(ShapeLayers, ReshapeAndPermute) {
  Tensor x = rand_tensor({2, 3, 4, 5}, 24);
  EXPECT_EQ(Reshape({4, -1})(x).shape(), Shape({2, 4, 15}));
  EXPECT_EQ(Reshape({60})(x).to_vector(), x.to_vector());
  EXPECT_EQ(Reshape({-1, 3})->compute_output_shape({{2, 3, 4, 5}}), Shape({2, 20, 3}));
  EXPECT_THROW(Reshape({7, -1})(x), std::invalid_argument);
  EXPECT_THROW(Reshape({-1, -1}), std::invalid_argument);
  EXPECT_THROW(Reshape({0, 3}), std::invalid_argument);
  auto f = [](const std::vector<Tensor>& in) { return Permute({3, 1, 2})(in[0]); };
  auto r = [](const std::vector<ref::RefTensor>& in) { return ref::permute(in[0], {0, 3, 1, 2}); };
  expect_forward_matches(f, r, {x}, testing::kF32);
  expect_gradients_match(f, r, {rand_tensor({2, 2, 3, 2}, 25)});
  EXPECT_EQ(Permute({2, 1})->compute_output_shape({{2, 3, 4}}), Shape({2, 4, 3}));
  EXPECT_THROW(Permute({0, 1}), std::invalid_argument);
  EXPECT_THROW(Permute({1, 1}), std::invalid_argument);
  EXPECT_THROW(Permute({2, 1})(x), std::invalid_argument);
}

// A squeeze-excite block and every layer above in one functional model: predict, save/load,
// trace, Graph::run, InferenceModel (f32) and ONNX Runtime agree; the ONNX file imports back.
std::shared_ptr<Model> everything_model() {
  set_global_seed(21);
  auto in = Input({6, 6, 4});
  Conv2DOptions same;
  same.padding = "same";
  auto h = Conv2D(8, 3, "", same)(in);
  h = ReLU(6.f)(h);
  auto squeeze = GlobalAveragePooling2D(true)(h);
  auto s = Conv2D(2, 1, "relu")(squeeze);
  s = Conv2D(8, 1, "hard_sigmoid")(s);
  auto se = Multiply()({h, s});
  auto m = Maximum()({ReLU(std::nullopt, 0.1f, 0.2f)(se), Activation("hard_swish")(h)});
  auto d = Subtract()({Minimum()({se, m}), Activation("mish")(se)});
  auto avg = Average()({d, se, m});
  auto cat = Concatenate()({avg, ReLU(3.f)(h)});                                // [N, 6, 6, 16]
  auto p = Permute({2, 1})(Reshape({36, 16})(Activation("hard_sigmoid")(cat)));  // [N, 16, 36]
  auto flat = Reshape({-1})(p);
  auto gmax = GlobalMaxPooling2D()(cat);
  auto out = Dense(3)(Concatenate()({Dense(5, "hard_silu")(flat), gmax}));
  return std::make_shared<Model>(in, out, "mobile_layers");
}

TEST(MobileLayers, FunctionalModelThroughEveryPath) {
  std::shared_ptr<Model> model = everything_model();
  Tensor x = random_uniform({3, 6, 6, 4}, -2.f, 2.f, 30);
  Tensor want = model->predict(x);

  const std::string saved = kiln::testing::temp_path("mobile_layers.kiln");
  save_model(*model, saved);
  std::shared_ptr<Model> loaded = load_model(saved);
  EXPECT_EQ(max_abs_diff(loaded->predict(x), want), 0.0);

  graph::Graph g = graph::trace(*model, random_uniform({2, 6, 6, 4}, -2.f, 2.f, 31));
  EXPECT_LE(max_abs_diff(g.run(x), want), 1e-6);
  runtime_export::InferenceModel fast(g);
  EXPECT_LE(max_abs_diff(fast.run(x), want), 1e-5) << fast.describe_plan({x.shape()});

  graph::Graph back = kiln::testing::expect_onnx_round_trip(g, {x}, "mobile_layers");
  bool global_max = false;
  for (const auto& n : back.nodes) {
    if (n.call.op() == "max_pool2d" && n.call.get_ints("pool_size") == std::vector<int64_t>{6, 6}) global_max = true;
  }
  EXPECT_TRUE(global_max) << back.to_string();
}

// keepdims=true keeps [N, 1, 1, C] (no Reshape node); the file holds GlobalMaxPool and
// GlobalAveragePool.
TEST(MobileLayers, GlobalPoolsExportAsOnnxGlobalPools) {
  auto in = Input({5, 4, 3});
  auto out = Add()({GlobalMaxPooling2D(true)(in), GlobalAveragePooling2D(true)(in)});
  Model model(in, out, "global_pools");
  Tensor x = random_uniform({2, 5, 4, 3}, -1.f, 1.f, 32);
  graph::Graph g = graph::trace(model, x);
  for (const auto& n : g.nodes) EXPECT_NE(n.call.op(), "reshape");
  const std::string path = kiln::testing::temp_path("global_pools.onnx");
  runtime_export::export_onnx(g, path);
  graph::Graph back = runtime_export::import_onnx(path);
  EXPECT_LE(max_abs_diff(back.run(x), model.predict(x)), 1e-6);
  if (auto ort = kiln::testing::run_onnx_runtime(path, {x})) {
    EXPECT_LE(max_abs_diff((*ort)[0], model.predict(x)), 1e-5);
  }
  std::string bytes = base::read_file(path);
  EXPECT_NE(bytes.find("GlobalMaxPool"), std::string::npos);
  EXPECT_NE(bytes.find("GlobalAveragePool"), std::string::npos);
}

}  // namespace
}  // namespace kiln
