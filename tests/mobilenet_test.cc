// keras.applications MobileNetV3Small / MobileNetV3Large / MobileNetV2: parameter counts against
// Keras's (tests/keras_param_counts.inc, made by tests/keras_param_counts.py), Keras's shapes and
// argument checks, one training step, save/load, trace to InferenceModel, ONNX Runtime.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "kiln.h"
#include "nn/layer_registry.h"
#include "nn/model_config.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_export.h"
#include "tests/gradcheck.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using testing::rand_tensor;

struct KerasCount {
  const char* application;
  Shape input_shape;
  double alpha;
  bool minimalistic;
  bool include_top;
  int64_t classes;
  int64_t count_params;  // model.count_params(): BN moving statistics included
  int64_t trainable;
};

const KerasCount kKerasCounts[] = {
#include "tests/keras_param_counts.inc"
};

// The weights do not depend on the image size (global pooling before the head), so every row is
// built at 32x32 with its channel count, which keeps the test fast.
std::unique_ptr<Model> build(const KerasCount& k) {
  const std::string app = k.application;
  const Shape image{32, 32, k.input_shape[2]};
  if (app == "mobilenet_v2") {
    return applications::mobilenet_v2(
        {.input_shape = image, .alpha = k.alpha, .include_top = k.include_top, .classes = k.classes});
  }
  applications::MobileNetV3Options o{.input_shape = image,
                                     .alpha = k.alpha,
                                     .minimalistic = k.minimalistic,
                                     .include_top = k.include_top,
                                     .classes = k.classes};
  return app == "mobilenet_v3_small" ? applications::mobilenet_v3_small(o) : applications::mobilenet_v3_large(o);
}

int64_t numel(const std::vector<Variable>& vars) {
  int64_t n = 0;
  for (const Variable& v : vars) n += v.value().numel();
  return n;
}

using kiln::testing::max_abs_diff;

TEST(MobileNet, ParameterCountsMatchKeras) {
  ASSERT_GE(std::size(kKerasCounts), 20u);
  for (const KerasCount& k : kKerasCounts) {
    std::string what = std::string(k.application) + " " + shape_str(k.input_shape) + " alpha " +
                       std::to_string(k.alpha) + (k.minimalistic ? " minimalistic" : "") +
                       (k.include_top ? " classes " + std::to_string(k.classes) : " no top");
    auto model = build(k);
    EXPECT_EQ(model->count_params(), k.count_params) << what;
    EXPECT_EQ(numel(model->trainable_variables()), k.trainable) << what;
  }
}

// Keras's names and shapes: at 64x64 the stem halves to 32x32, the stride-2 blocks (explicitly
// padded) to 16, 8, 4 and 2, and the 1x1 head keeps the [1, 1, C] map until Flatten.
TEST(MobileNet, V3SmallFollowsKerasShapesAndNames) {
  auto model = applications::mobilenet_v3_small({.input_shape = {64, 64, 3}, .classes = 7});
  EXPECT_EQ(model->name(), "MobileNetV3Small");
  std::string summary = model->summary();
  for (const char* line : {"conv (Conv2D)", "(None, 32, 32, 16)", "expanded_conv_depthwise_pad", "(None, 33, 33, 16)",
                           "expanded_conv_squeeze_excite_mul", "expanded_conv_3_depthwise", "(None, 4, 4, 96)",
                           "expanded_conv_10_add", "(None, 2, 2, 96)", "conv_1 (Conv2D)", "(None, 2, 2, 576)",
                           "conv_2 (Conv2D)", "(None, 1, 1, 1024)", "logits", "(None, 1, 1, 7)", "predictions"}) {
    EXPECT_NE(summary.find(line), std::string::npos) << line << " not in\n" << summary;
  }
  Tensor y = (*model)(rand_tensor({2, 64, 64, 3}, 1, 0.f, 255.f));
  ASSERT_EQ(y.shape(), (Shape{2, 7}));
  for (int64_t i = 0; i < 2; ++i) {  // softmax, Keras's default classifier_activation
    std::vector<float> v = y.to_vector();
    float sum = 0;
    for (int64_t c = 0; c < 7; ++c) sum += v[i * 7 + c];
    EXPECT_NEAR(sum, 1.f, 1e-5f);
  }
}

TEST(MobileNet, IncludeTopFalsePoolsAsKeras) {
  auto features = applications::mobilenet_v3_large({.input_shape = {64, 64, 3}, .include_top = false});
  EXPECT_EQ((*features)(rand_tensor({1, 64, 64, 3}, 1, 0.f, 255.f)).shape(), (Shape{1, 2, 2, 960}));
  auto avg = applications::mobilenet_v3_small({.input_shape = {32, 32, 3}, .include_top = false, .pooling = "avg"});
  EXPECT_EQ((*avg)(rand_tensor({1, 32, 32, 3}, 1, 0.f, 255.f)).shape(), (Shape{1, 576}));
  auto max = applications::mobilenet_v2({.input_shape = {32, 32, 3}, .include_top = false, .pooling = "max"});
  EXPECT_EQ((*max)(rand_tensor({1, 32, 32, 3}, 1, -1.f, 1.f)).shape(), (Shape{1, 1280}));
  EXPECT_EQ(max->name(), "mobilenetv2_1.00_32");
}

TEST(MobileNet, BadArgumentsSayWhat) {
  auto throws_with = [](auto make, const std::string& needle) {
    try {
      make();
      ADD_FAILURE() << "no exception; expected one mentioning " << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  throws_with([] { applications::mobilenet_v3_small({.input_shape = {31, 64, 3}}); }, "at least 32");
  throws_with([] { applications::mobilenet_v2({.input_shape = {64, 64}}); }, "[height, width, channels]");
  throws_with([] { applications::mobilenet_v3_large({.alpha = 0}); }, "alpha");
  throws_with([] { applications::mobilenet_v3_small({.input_shape = {32, 32, 3}, .classes = 0}); }, "classes");
  throws_with([] { applications::mobilenet_v3_small({.input_shape = {32, 32, 3}, .dropout_rate = 1.f}); },
              "dropout_rate");
  throws_with([] { applications::mobilenet_v2({.input_shape = {32, 32, 3}, .include_top = false, .pooling = "sum"}); },
              "pooling");
}

// input_tensor: layers before it (here an upsampling of 28x28 grey images) become part of the model.
TEST(MobileNet, InputTensorKeepsTheLayersBeforeIt) {
  SymbolicTensor images = Input({16, 16, 1}, DType::u8);
  SymbolicTensor padded = ZeroPadding2D(8)(Rescaling(1.f)(images));
  auto model = applications::mobilenet_v3_small(
      {.minimalistic = true, .input_tensor = padded, .classes = 10, .classifier_activation = ""});
  ASSERT_TRUE(model->built_input().has_value());
  EXPECT_EQ(model->built_input()->first, (Shape{16, 16, 1}));
  EXPECT_EQ(model->built_input()->second, DType::u8);
  Tensor x = cast(rand_tensor({3, 16, 16, 1}, 4, 0.f, 255.f), DType::u8);
  EXPECT_EQ((*model)(x).shape(), (Shape{3, 10}));
}

// The example's and inference benchmark's model: 28x28 u8 images brought to image_size inside the
// model, by zero padding (32), UpSampling2D (multiples of 28) or Resizing (anything else).
TEST(MobileNet, FashionMnistModelBringsImagesToItsSize) {
  const int64_t plain = applications::mobilenet_v3_small(
                            {.input_shape = {32, 32, 1}, .minimalistic = true, .classes = 10})
                            ->count_params();
  for (auto [size, layer] : std::vector<std::pair<int64_t, std::string>>{
           {32, "pad_to_32"}, {56, "upsample_to_56"}, {84, "upsample_to_84"}, {48, "resize_to_48"}}) {
    SCOPED_TRACE(size);
    auto model = applications::fashion_mnist_mobilenet_v3_small({.image_size = size});
    EXPECT_EQ(model->count_params(), plain);  // the resize adds no weights
    std::vector<std::string> names;
    for (const Layer& l : model->layers()) names.push_back(l->name());
    ASSERT_GE(names.size(), 2u);
    EXPECT_EQ(names[0], "rescaling");
    EXPECT_EQ(names[1], layer);
    Tensor x = cast(rand_tensor({2, 28, 28, 1}, 6, 0.f, 255.f), DType::u8);
    EXPECT_EQ((*model)(x).shape(), (Shape{2, 10}));
  }
  EXPECT_THROW(
      {
        try {
          applications::fashion_mnist_mobilenet_v3_small({.image_size = 28});
        } catch (const std::invalid_argument& e) {
          EXPECT_NE(std::string(e.what()).find("image_size 28 is below 32"), std::string::npos) << e.what();
          throw;
        }
      },
      std::invalid_argument);
}

void expect_training_step_finite(Model& model, const Shape& image) {
  optim::Adam adam(1e-3f);
  SparseCategoricalCrossentropy loss_fn(/*from_logits=*/false);
  Shape xs{2};
  xs.insert(xs.end(), image.begin(), image.end());
  Tensor x = rand_tensor(xs, 2, 0.f, 255.f);
  Tensor y = Tensor::from_int32({3, 7}, {2});
  auto vars = model.trainable_variables();
  Tensor loss;
  std::vector<Tensor> grads;
  {
    GradientTape tape;
    loss = loss_fn(y, model(x, /*training=*/true));
    grads = tape.gradient(loss, vars);
  }
  ASSERT_TRUE(std::isfinite(loss.item())) << model.name();
  ASSERT_EQ(grads.size(), vars.size());
  // The stem's kernel and the classifier's get gradients. (Some BN betas get exactly none, rightly:
  // a per-channel shift that only feeds training-mode BatchNormalization, through 1x1 convs or
  // on 1x1 maps, is removed by it.)
  auto nonzero = [](const Tensor& g) {
    for (float v : g.to_vector()) {
      if (v != 0) return true;
    }
    return false;
  };
  for (const Tensor& g : grads) {
    for (float v : g.to_vector()) ASSERT_TRUE(std::isfinite(v)) << model.name() << ": gradient not finite";
  }
  EXPECT_TRUE(nonzero(grads.front())) << vars.front().name();
  EXPECT_TRUE(nonzero(grads.back())) << vars.back().name();
  adam.apply_gradients(grads, vars);
  EXPECT_TRUE(std::isfinite(model(x, /*training=*/true).to_vector()[0]));
}

TEST(MobileNet, TrainingStepStaysFinite) {
  auto small = applications::mobilenet_v3_small({.input_shape = {32, 32, 3}, .classes = 10});
  expect_training_step_finite(*small, {32, 32, 3});
  auto large = applications::mobilenet_v3_large({.input_shape = {32, 32, 3}, .minimalistic = true, .classes = 10});
  expect_training_step_finite(*large, {32, 32, 3});
  auto v2 = applications::mobilenet_v2({.input_shape = {32, 32, 3}, .alpha = 0.35, .classes = 10});
  expect_training_step_finite(*v2, {32, 32, 3});
}

// Moving statistics away from their initial values, so inference-mode BN is not an identity.
void train_one_step(Model& model, const Tensor& x) {
  model.compile(optim::Adam(1e-3), SparseCategoricalCrossentropy(), {});
  std::vector<int32_t> labels(x.shape()[0]);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 10);
  model.fit(data::Dataset::from_tensor_slices(x, Tensor::from_int32(labels, {x.shape()[0]})).batch(4),
            {.epochs = 1, .verbose = 0});
}

TEST(MobileNet, SaveLoadTraceAndOnnxRuntimeAgree) {
  struct Case {
    std::string name;
    std::unique_ptr<Model> model;
  };
  std::vector<Case> cases;
  cases.push_back({"v3_small", applications::mobilenet_v3_small({.input_shape = {32, 32, 3}, .classes = 10})});
  cases.push_back({"v3_large_minimalistic",
                   applications::mobilenet_v3_large({.input_shape = {32, 32, 3}, .minimalistic = true, .classes = 10})});
  cases.push_back({"v2", applications::mobilenet_v2({.input_shape = {32, 32, 3}, .alpha = 0.35, .classes = 10})});
  for (Case& c : cases) {
    SCOPED_TRACE(c.name);
    Model& model = *c.model;
    Tensor x = rand_tensor({8, 32, 32, 3}, 5, 0.f, 255.f);
    if (c.name == "v2") x = rand_tensor({8, 32, 32, 3}, 5, -1.f, 1.f);
    train_one_step(model, x);
    Tensor want = model.predict(x);

    std::string path = testing::temp_path("mobilenet_" + c.name + ".kiln");
    save_model(model, path);
    auto loaded = load_model(path);
    EXPECT_EQ(loaded->count_params(), model.count_params());
    EXPECT_LE(max_abs_diff(loaded->predict(x), want), 1e-6f);

    auto rebuilt = model_from_config(model.class_name(), model.config());
    EXPECT_EQ(rebuilt->config(), model.config());

    // Traced on the whole batch (ZeroPadding2D traces to a `pad` node, so any batch would do).
    auto traced = runtime_export::trace(model, x);
    float traced_diff = max_abs_diff(traced->predict(x), want);
    std::printf("%s: InferenceModel vs Model::predict max abs diff %.3g\n", c.name.c_str(), traced_diff);
    EXPECT_LE(traced_diff, 1e-4f);

    std::string onnx = testing::temp_path("mobilenet_" + c.name + ".onnx");
    runtime_export::export_onnx(model, {x}, onnx);
    if (auto ort = testing::run_onnx_runtime(onnx, {x})) {
      ASSERT_EQ(ort->size(), 1u);
      float diff = max_abs_diff((*ort)[0], want);
      std::printf("%s: ONNX Runtime vs Model::predict max abs diff %.3g\n", c.name.c_str(), diff);
      EXPECT_LE(diff, 1e-4f);
    }
  }
}

}  // namespace
}  // namespace kiln
