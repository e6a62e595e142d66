#include <gtest/gtest.h>

#include <cmath>

#include "kiln.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using testing::rand_tensor;

TEST(Layers, DenseBuildsOnFirstCallWithGlorotInit) {
  Layer dense = Dense(5, "relu");
  EXPECT_FALSE(dense->built());
  Tensor y = dense(rand_tensor({3, 7}, 1));
  EXPECT_TRUE(dense->built());
  EXPECT_EQ(y.shape(), (Shape{3, 5}));
  for (float v : y.to_vector()) EXPECT_GE(v, 0.f);
  auto vars = dense->trainable_variables();
  ASSERT_EQ(vars.size(), 2u);
  EXPECT_EQ(vars[0].shape(), (Shape{7, 5}));
  float limit = std::sqrt(6.f / 12.f);
  for (float v : vars[0].value().to_vector()) EXPECT_LE(std::fabs(v), limit);
  for (float v : vars[1].value().to_vector()) EXPECT_EQ(v, 0.f);
  EXPECT_EQ(dense->count_params(), 7 * 5 + 5);
  EXPECT_THROW(dense(rand_tensor({3, 8}, 2)), std::invalid_argument);  // built for 7
}

TEST(Layers, DenseMatchesReference) {
  Layer dense = Dense(4, "tanh");
  Tensor x = rand_tensor({2, 3, 6}, 3);
  Tensor y = dense(x);
  auto vars = dense->variables();
  ref::RefTensor bias = ref::from(vars[1].value());
  auto expected = ref::unary(ref::linear(ref::from(x), ref::from(vars[0].value()), &bias, false),
                             [](double v) { return std::tanh(v); });
  auto got = y.to_vector();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected.data[i], 1e-5);
}

TEST(Layers, ShapesOfEveryLayer) {
  Tensor img = rand_tensor({2, 8, 8, 3}, 4);
  Conv2DOptions same;
  same.padding = "same";
  EXPECT_EQ(Conv2D(4, 3)(img).shape(), (Shape{2, 6, 6, 4}));
  EXPECT_EQ(Conv2D(4, 3, "relu", same)(img).shape(), (Shape{2, 8, 8, 4}));
  EXPECT_EQ(MaxPooling2D()(img).shape(), (Shape{2, 4, 4, 3}));
  EXPECT_EQ(AveragePooling2D({3, 3}, {1, 1}, "same")(img).shape(), (Shape{2, 8, 8, 3}));
  EXPECT_EQ(GlobalAveragePooling2D()(img).shape(), (Shape{2, 3}));
  EXPECT_EQ(Flatten()(img).shape(), (Shape{2, 192}));
  EXPECT_EQ(BatchNormalization()(img, true).shape(), img.shape());
  EXPECT_EQ(Activation("gelu")(img).shape(), img.shape());
  EXPECT_EQ(Softmax()(img).shape(), img.shape());
  EXPECT_EQ(Add()({img, img}).shape(), img.shape());
  Tensor u8 = cast(rand_tensor({1, 2}, 5, 0, 255), DType::u8);
  Tensor r = Rescaling(0.5f, 1.f)(u8);
  EXPECT_EQ(r.dtype(), DType::f32);
  EXPECT_FLOAT_EQ(r.to_vector()[0], u8.to_vector()[0] * 0.5f + 1.f);
}

TEST(Layers, DropoutScalesInTrainingAndIsIdentityInInference) {
  Layer drop = Dropout(0.5f, 7);
  Tensor x = Tensor::ones({1000});
  EXPECT_EQ(drop(x, false).to_vector(), x.to_vector());
  auto y = drop(x, true).to_vector();
  int zeros = 0;
  for (float v : y) {
    EXPECT_TRUE(v == 0.f || v == 2.f);
    zeros += v == 0.f;
  }
  EXPECT_NEAR(zeros, 500, 60);
  set_training_step(5);
  auto a = drop(x, true).to_vector();
  auto b = drop(x, true).to_vector();
  EXPECT_EQ(a, b);  // same step, same mask: resumed runs reproduce
  set_training_step(0);
}

TEST(Layers, BatchNormalizationUpdatesMovingStatistics) {
  BatchNormalizationOptions opt;
  opt.momentum = 0.5f;
  Layer bn = BatchNormalization(opt);
  Tensor x = Tensor::from_vector({1, 10, 3, 20}, {2, 2});  // channel means 2 and 15
  Tensor y = bn(x, true);
  auto vars = bn->variables();  // gamma, beta, moving_mean, moving_variance
  auto mean = vars[2].value().to_vector();
  EXPECT_NEAR(mean[0], 0.5 * 2, 1e-5);
  EXPECT_NEAR(mean[1], 0.5 * 15, 1e-5);
  auto var = vars[3].value().to_vector();
  EXPECT_NEAR(var[0], 0.5 + 0.5 * 1, 1e-4);
  EXPECT_EQ(bn->trainable_variables().size(), 2u);
  EXPECT_EQ(bn->non_trainable_variables().size(), 2u);
  // Inference uses the moving statistics.
  Tensor yi = bn(x, false);
  EXPECT_NEAR(yi.to_vector()[0], (1 - 1.0) / std::sqrt(1.0 + 1e-3), 1e-4);
}

TEST(Layers, BadArgumentsAreClear) {
  EXPECT_THROW(Dense(0), std::invalid_argument);
  EXPECT_THROW(Dense(3, "relux"), std::invalid_argument);
  EXPECT_THROW(Dropout(1.5f), std::invalid_argument);
  EXPECT_THROW(Conv2D(4, 3)(rand_tensor({8, 8, 3}, 1)), std::invalid_argument);
  EXPECT_THROW(Add()({rand_tensor({2, 3}, 1), rand_tensor({2, 4}, 1)}), std::invalid_argument);
  EXPECT_THROW(Dense(3)({rand_tensor({2, 3}, 1), rand_tensor({2, 3}, 1)}), std::invalid_argument);
  Conv2DOptions bad;
  bad.padding = "full";
  EXPECT_THROW(Conv2D(4, 3, "", bad), std::invalid_argument);
}

TEST(Model, SequentialSummaryCountsParameters) {
  Sequential model({Conv2D(8, 3, "relu"), MaxPooling2D(), Flatten(), Dense(10)}, "tiny");
  EXPECT_THROW(model.summary(), std::logic_error);
  model.build({10, 10, 1});
  std::string s = model.summary();
  EXPECT_NE(s.find("Model: \"tiny\""), std::string::npos) << s;
  EXPECT_NE(s.find("Conv2D"), std::string::npos) << s;
  EXPECT_NE(s.find("(None, 8, 8, 8)"), std::string::npos) << s;
  EXPECT_NE(s.find("(None, 10)"), std::string::npos) << s;
  int64_t expected = (3 * 3 * 1 * 8 + 8) + (4 * 4 * 8 * 10 + 10);
  EXPECT_NE(s.find("Total params: " + std::to_string(expected)), std::string::npos) << s;
  EXPECT_EQ(model.count_params(), expected);
}

TEST(Model, FunctionalResidualBlock) {
  SymbolicTensor in = Input({8, 8, 4});
  Conv2DOptions same;
  same.padding = "same";
  SymbolicTensor h = Conv2D(4, 3, "relu", same)(in);
  h = BatchNormalization()(h);
  h = Conv2D(4, 3, "", same)(h);
  SymbolicTensor res = Activation("relu")(Add()({h, in}));
  SymbolicTensor out = Dense(3)(GlobalAveragePooling2D()(res));
  Model model(in, out, "resnet_block");
  EXPECT_EQ(out.shape(), (Shape{3}));
  EXPECT_EQ(model.layers().size(), 7u);
  Tensor x = rand_tensor({2, 8, 8, 4}, 9);
  Tensor y = model(x, true);
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  // The functional graph computes what calling the layers by hand computes.
  auto layers = model.layers();
  Tensor a = layers[0](x, false);
  a = layers[1](a, false);
  a = layers[2](a, false);
  a = layers[4](layers[3]({a, x}, false), false);
  a = layers[6](layers[5](a, false), false);
  auto expect = a.to_vector(), got = model(x, false).to_vector();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expect[i], 1e-5);
  EXPECT_THROW(model(rand_tensor({2, 8, 8, 5}, 1)), std::invalid_argument);
  EXPECT_NE(model.summary().find("Add"), std::string::npos);
}

TEST(Model, FoldsReluIntoBatchNormAndConvWithoutChangingResults) {
  Conv2DOptions same;
  same.padding = "same";
  Layer conv = Conv2D(4, 3, "", same), bn = BatchNormalization(), act1 = Activation("relu"),
        act2 = Activation("relu"), head = Dense(3);
  SymbolicTensor in = Input({6, 6, 2});
  SymbolicTensor h = act1(conv(in));          // folded into the conv
  h = act2(bn(h));                            // folded into the batch norm
  Model fused(in, head(GlobalAveragePooling2D()(h)));
  Sequential plain({conv, act1, bn, act2});   // the same layers, run one by one
  Tensor x = rand_tensor({4, 6, 6, 2}, 31);
  for (bool training : {false, true}) {
    std::vector<Tensor> g_fused, g_plain;
    Tensor y_fused, y_plain;
    {
      GradientTape tape;
      tape.watch(x);
      y_fused = fused.call({x}, training)[0];
      g_fused = tape.gradient(reduce_sum(square(y_fused)), {x, conv->trainable_variables()[0], bn->trainable_variables()[0]});
    }
    {
      GradientTape tape;
      tape.watch(x);
      y_plain = head(global_avg_pool2d(plain(x, training)));
      g_plain = tape.gradient(reduce_sum(square(y_plain)), {x, conv->trainable_variables()[0], bn->trainable_variables()[0]});
    }
    auto a = y_fused.to_vector(), b = y_plain.to_vector();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5);
    for (size_t k = 0; k < g_fused.size(); ++k) {
      auto ga = g_fused[k].to_vector(), gb = g_plain[k].to_vector();
      for (size_t i = 0; i < ga.size(); ++i) EXPECT_NEAR(ga[i], gb[i], 1e-4 + 1e-4 * std::fabs(gb[i])) << k;
    }
  }
}

// The gradient of a whole model (conv, batchnorm, pooling, dense, loss) against central
// differences of the same model's loss.
TEST(Model, WholeModelGradientMatchesFiniteDifferences) {
  Conv2DOptions same;
  same.padding = "same";
  Sequential model({Conv2D(3, 3, "tanh", same, "fd_conv"), BatchNormalization({}, "fd_bn"),
                    AveragePooling2D({2, 2}, {0, 0}, "valid", "fd_pool"), Flatten("fd_flat"),
                    Dense(4, "tanh", {}, "fd_dense"), Dense(3, "", {}, "fd_out")});
  Tensor x = rand_tensor({4, 4, 4, 2}, 11);
  Tensor y = Tensor::from_int32({0, 2, 1, 2}, {4});
  SparseCategoricalCrossentropy loss_fn(true);
  model.build({4, 4, 2});
  auto vars = model.trainable_variables();
  std::vector<Tensor> grads;
  {
    GradientTape tape;
    grads = tape.gradient(loss_fn(y, model(x, true)), vars);
  }
  auto loss_at = [&]() { return static_cast<double>(loss_fn(y, model(x, true)).item()); };
  const float eps = 1e-2f;
  int checked = 0, bad = 0;
  for (size_t k = 0; k < vars.size(); ++k) {
    float* w = vars[k].value().data<float>();
    auto g = grads[k].to_vector();
    for (int64_t i = 0; i < vars[k].value().numel(); i += 1 + vars[k].value().numel() / 12) {
      float orig = w[i];
      w[i] = orig + eps;
      vars[k].value().bump_version();
      double up = loss_at();
      w[i] = orig - eps;
      vars[k].value().bump_version();
      double down = loss_at();
      w[i] = orig;
      vars[k].value().bump_version();
      double numeric = (up - down) / (2 * eps);
      ++checked;
      if (std::fabs(g[i] - numeric) > 2e-3 + 3e-2 * std::fabs(numeric)) {
        ++bad;
        ADD_FAILURE() << vars[k].name() << "[" << i << "]: analytic " << g[i] << " numeric " << numeric;
      }
    }
  }
  EXPECT_GT(checked, 40);
  EXPECT_EQ(bad, 0);
}

TEST(Losses, MatchFormulasAndGradients) {
  Tensor logits = rand_tensor({4, 3}, 21, -2, 2);
  Tensor labels = Tensor::from_int32({0, 2, 1, 1}, {4});
  auto lp = ref::softmax(ref::from(logits), -1, true);
  double expected = 0;
  std::vector<int> l = {0, 2, 1, 1};
  for (int i = 0; i < 4; ++i) expected -= lp.data[i * 3 + l[i]] / 4;
  EXPECT_NEAR(SparseCategoricalCrossentropy(true)(labels, logits).item(), expected, 1e-5);
  EXPECT_NEAR(CategoricalCrossentropy(true)(one_hot(labels, 3), logits).item(), expected, 1e-5);
  EXPECT_NEAR(SparseCategoricalCrossentropy(false)(labels, softmax(logits)).item(), expected, 1e-5);

  Tensor z = Tensor::from_vector({1, 0, 1, 0}, {4}), s = Tensor::from_vector({2.f, -1.f, -0.5f, 0.3f}, {4});
  double bce = 0;
  for (int i = 0; i < 4; ++i) {
    double p = 1 / (1 + std::exp(-s.to_vector()[i]));
    bce -= (z.to_vector()[i] * std::log(p) + (1 - z.to_vector()[i]) * std::log(1 - p)) / 4;
  }
  EXPECT_NEAR(BinaryCrossentropy(true)(z, s).item(), bce, 1e-5);
  EXPECT_NEAR(BinaryCrossentropy(false)(z, sigmoid(s)).item(), bce, 1e-5);
  EXPECT_NEAR(MeanSquaredError()(z, s).item(), (1 + 1 + 2.25 + 0.09) / 4, 1e-5);

  // Gradients of the losses against finite differences of the double references.
  auto f = [&](const std::vector<Tensor>& in) { return SparseCategoricalCrossentropy(true)(labels, in[0]); };
  auto r = [&](const std::vector<ref::RefTensor>& in) {
    auto p = ref::softmax(in[0], -1, true);
    double s = 0;
    for (int i = 0; i < 4; ++i) s -= p.data[i * 3 + l[i]] / 4;
    return ref::RefTensor{{}, {s}};
  };
  testing::expect_gradients_match(f, r, {logits});
  auto fb = [&](const std::vector<Tensor>& in) { return BinaryCrossentropy(true)(z, in[0]); };
  auto rb = [&](const std::vector<ref::RefTensor>& in) {
    double s = 0;
    for (int i = 0; i < 4; ++i) {
      double x = in[0].data[i], t = z.to_vector()[i];
      s += (std::log1p(std::exp(x)) - x * t) / 4;
    }
    return ref::RefTensor{{}, {s}};
  };
  testing::expect_gradients_match(fb, rb, {s});
}

TEST(Losses, BadShapesAreClear) {
  EXPECT_THROW(SparseCategoricalCrossentropy(true)(Tensor::from_int32({0, 1, 2}, {3}), Tensor::zeros({4, 3})),
               std::invalid_argument);
  EXPECT_THROW(SparseCategoricalCrossentropy(true)(Tensor::from_int32({0, 5}, {2}), Tensor::zeros({2, 3})),
               std::out_of_range);
  EXPECT_THROW(MeanSquaredError()(Tensor::zeros({3}), Tensor::zeros({4})), std::invalid_argument);
  EXPECT_THROW(make_metric("precision@k", MeanSquaredError()), std::invalid_argument);
}

TEST(Metrics, AccuracyResolvesFromTheLoss) {
  auto acc = make_metric("accuracy", SparseCategoricalCrossentropy(true));
  acc->update_state(Tensor::from_int32({0, 1}, {2}), Tensor::from_vector({5, 1, 0, 2}, {2, 2}));
  acc->update_state(Tensor::from_int32({1}, {1}), Tensor::from_vector({3, 1}, {1, 2}));
  EXPECT_NEAR(acc->result(), 2.0 / 3, 1e-9);
  EXPECT_EQ(acc->name(), "accuracy");
  acc->reset_state();
  EXPECT_EQ(acc->result(), 0);
  auto cat = make_metric("accuracy", CategoricalCrossentropy(true));
  cat->update_state(Tensor::from_vector({0, 1, 1, 0}, {2, 2}), Tensor::from_vector({0.2f, 0.8f, 0.3f, 0.7f}, {2, 2}));
  EXPECT_NEAR(cat->result(), 0.5, 1e-9);
  auto bin = make_metric("accuracy", BinaryCrossentropy(true));
  bin->update_state(Tensor::from_vector({1, 0, 1}, {3}), Tensor::from_vector({0.5f, -0.2f, -1.f}, {3}));
  EXPECT_NEAR(bin->result(), 2.0 / 3, 1e-9);
}

}  // namespace
}  // namespace kiln
