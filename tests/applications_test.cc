// keras.applications architectures: ResNet-50's size against Keras's and one training step.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "kiln.h"
#include "nn/layer_registry.h"
#include "nn/model_config.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using testing::rand_tensor;

int64_t numel(const std::vector<Variable>& vars) {
  int64_t n = 0;
  for (const Variable& v : vars) n += v.value().numel();
  return n;
}

// Keras: ResNet50(weights=None, classes=10, input_shape=(224, 224, 3)).count_params() is
// 23,608,202, of which the BN moving means and variances (2 x 26,560) are non-trainable. The
// count does not depend on the image size (global pooling), so a 32x32 model checks it.
TEST(Applications, ResNet50ParameterCountMatchesKeras) {
  auto model = applications::resnet50({32, 32, 3}, 10);
  model->build({32, 32, 3});
  EXPECT_EQ(model->count_params(), 23608202);
  EXPECT_EQ(numel(model->non_trainable_variables()), 53120);
  EXPECT_EQ(numel(model->trainable_variables()), 23608202 - 53120);
  // The 1000-class model differs only in the head (building it would double the test's time).
  std::vector<Variable> head;
  for (const Variable& v : model->variables()) {
    if (v.name().rfind("predictions/", 0) == 0) head.push_back(v);
  }
  ASSERT_EQ(numel(head), 2048 * 10 + 10);
  EXPECT_EQ(model->count_params() - numel(head) + 2048 * 1000 + 1000, 25636712);

  // The architecture survives its Keras config (ZeroPadding2D included).
  auto rebuilt = model_from_config(model->class_name(), model->config());
  rebuilt->build({32, 32, 3});
  EXPECT_EQ(rebuilt->count_params(), 23608202);
  EXPECT_EQ(rebuilt->config(), model->config());
}

// Keras pads before the 7x7/2 stem and the 3x3/2 pool, so 64x64 gives 32x32 and then 16x16
// (with 'same' the sizes agree but the borders would not), and the stages halve from there.
TEST(Applications, ResNet50ShapesFollowKeras) {
  auto model = applications::resnet50({64, 64, 3}, 10);
  model->build({64, 64, 3});
  std::string summary = model->summary();
  for (const char* line : {"conv1_conv", "(None, 32, 32, 64)", "pool1_pool", "(None, 16, 16, 64)",
                           "conv2_block3_out", "(None, 16, 16, 256)", "conv3_block4_out", "(None, 8, 8, 512)",
                           "conv5_block3_out", "(None, 2, 2, 2048)"}) {
    EXPECT_NE(summary.find(line), std::string::npos) << line << " not in\n" << summary;
  }
  Tensor y = (*model)(rand_tensor({2, 64, 64, 3}, 1));
  EXPECT_EQ(y.shape(), (Shape{2, 10}));
}

TEST(Applications, ResNet50TrainingStepStaysFinite) {
  auto model = applications::resnet50({32, 32, 3}, 10);
  model->build({32, 32, 3});
  optim::SGD sgd({.learning_rate = 1e-3f, .momentum = 0.9f});
  SparseCategoricalCrossentropy loss_fn(/*from_logits=*/true);
  Tensor x = rand_tensor({2, 32, 32, 3}, 2);
  Tensor y = Tensor::from_int32({3, 7}, {2});
  auto vars = model->trainable_variables();
  Tensor loss;
  std::vector<Tensor> grads;
  {
    GradientTape tape;
    loss = loss_fn(y, (*model)(x, /*training=*/true));
    grads = tape.gradient(loss, vars);
  }
  EXPECT_TRUE(std::isfinite(loss.item()));
  ASSERT_EQ(grads.size(), vars.size());
  for (const Tensor& g : grads) {
    for (float v : g.to_vector()) ASSERT_TRUE(std::isfinite(v)) << "gradient not finite";
  }
  sgd.apply_gradients(grads, vars);
  for (const Variable& v : model->variables()) {
    for (float w : v.value().to_vector()) ASSERT_TRUE(std::isfinite(w)) << v.name() << " not finite";
  }
  EXPECT_TRUE(std::isfinite((*model)(x, /*training=*/true).to_vector()[0]));
}

// examples/char_lm.cc's transformer: its size against the PyTorch twin's (CharLm of
// examples/char_lm_torch_twin.py at these sizes counts 821,068 trainable parameters), one
// logit per vocabulary entry at every position, causality, and errors naming the option.
TEST(Applications, CharTransformerLmMatchesItsTwinAndIsCausal) {
  auto model = applications::char_transformer_lm({.vocab = 76, .context = 64});
  EXPECT_EQ(numel(model->trainable_variables()), 821068);
  auto small = applications::char_transformer_lm({.vocab = 11, .context = 6, .dim = 8, .heads = 2, .blocks = 2});
  Tensor tokens = Tensor::from_int32({1, 2, 3, 4, 5, 6, 1, 2, 3, 9, 9, 9}, {2, 6});
  Tensor logits = small->call({tokens, applications::lm_positions(2, 6)}, false)[0];
  ASSERT_EQ(logits.shape(), (Shape{2, 6, 11}));
  // The rows share their first three characters; a causal model gives them the same first
  // three positions' logits and different later ones.
  std::vector<float> v = logits.to_vector();
  for (int i = 0; i < 3 * 11; ++i) EXPECT_FLOAT_EQ(v[i], v[6 * 11 + i]) << i;
  float later = 0;
  for (int i = 3 * 11; i < 6 * 11; ++i) later = std::max(later, std::fabs(v[i] - v[6 * 11 + i]));
  EXPECT_GT(later, 1e-4f);
  EXPECT_EQ(applications::lm_positions(2, 3).to_int32(), (std::vector<int32_t>{0, 1, 2, 0, 1, 2}));
  try {
    applications::char_transformer_lm({.vocab = 10, .dim = 10, .heads = 4});
    ADD_FAILURE() << "heads 4 with dim 10 was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("heads 4 does not divide dim 10"), std::string::npos) << e.what();
  }
  EXPECT_THROW(applications::char_transformer_lm({}), std::invalid_argument);  // no vocab
}

TEST(Applications, ZeroPadding2DPadsEachSideAndPassesGradientsBack) {
  Layer pad = ZeroPadding2D({{{1, 2}, {0, 1}}});
  Tensor x = rand_tensor({1, 2, 2, 1}, 3, 1.f, 2.f);
  Tensor y = pad(x);
  ASSERT_EQ(y.shape(), (Shape{1, 5, 3, 1}));
  std::vector<float> in = x.to_vector(), out = y.to_vector();
  for (int64_t h = 0; h < 5; ++h) {
    for (int64_t w = 0; w < 3; ++w) {
      bool inside = h >= 1 && h < 3 && w < 2;
      EXPECT_EQ(out[h * 3 + w], inside ? in[(h - 1) * 2 + w] : 0.f) << h << "," << w;
    }
  }
  Variable v(x, "x");
  GradientTape tape;
  Tensor r = rand_tensor({1, 5, 3, 1}, 4);
  auto g = tape.gradient(reduce_sum(pad(v.value()) * r), std::vector<Variable>{v});
  ASSERT_EQ(g[0].shape(), x.shape());
  std::vector<float> gv = g[0].to_vector(), rv = r.to_vector();
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t w = 0; w < 2; ++w) EXPECT_EQ(gv[h * 2 + w], rv[(h + 1) * 3 + w]);
  }

  Layer loaded = deserialize_layer(serialize_layer(pad));
  EXPECT_EQ(loaded->class_name(), "ZeroPadding2D");
  EXPECT_EQ(loaded(x).to_vector(), out);
}

}  // namespace
}  // namespace kiln
