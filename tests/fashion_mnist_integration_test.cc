// The accuracy bars on the real Fashion-MNIST test set, 5 epochs each, Keras defaults
// (Adam 1e-3, batch 32), and the CNN again under the mixed_bfloat16 policy. Bazel's test
// timeout is the time budget for the whole file.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "kiln.h"
#include "nn/applications/applications.h"

namespace kiln {
namespace {

using namespace kiln::nn;

double train_and_test(Sequential& model, const data::FashionMnist& fm, uint64_t seed) {
  auto train = data::Dataset::from_tensor_slices(fm.x_train, fm.y_train).shuffle(60000, seed).batch(32).prefetch(2);
  auto test = data::Dataset::from_tensor_slices(fm.x_test, fm.y_test).batch(500);
  model.build({28, 28, 1}, DType::u8);
  model.compile(optim::Adam(1e-3), SparseCategoricalCrossentropy(true), {"accuracy"});
  auto start = std::chrono::steady_clock::now();
  model.fit(train, {.epochs = 5, .verbose = 2});
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double acc = model.evaluate(test)["accuracy"];
  std::printf("%s: test accuracy %.4f after 5 epochs in %.1fs\n", model.name().c_str(), acc, secs);
  return acc;
}

TEST(FashionMnist, MlpReaches85PercentIn5Epochs) {
  set_global_seed(2024);
  data::FashionMnist fm = data::load_fashion_mnist();
  auto model = applications::fashion_mnist_mlp();
  EXPECT_GE(train_and_test(*model, fm, 11), 0.85);
}

TEST(FashionMnist, KerasCnnReaches89PercentIn5EpochsAndBf16IsWithinOnePoint) {
  data::FashionMnist fm = data::load_fashion_mnist();
  set_global_seed(2024);
  auto fp32 = applications::keras_cnn();
  double fp32_acc = train_and_test(*fp32, fm, 12);
  EXPECT_GE(fp32_acc, 0.89);

  set_global_seed(2024);
  auto bf16 = applications::keras_cnn();
  bf16->set_policy("mixed_bfloat16");
  double bf16_acc = train_and_test(*bf16, fm, 12);
  EXPECT_GE(bf16_acc, fp32_acc - 0.01) << "mixed_bfloat16 " << bf16_acc << " vs float32 " << fp32_acc;
}

}  // namespace
}  // namespace kiln
