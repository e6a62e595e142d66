// A 784-128-64-10 MLP on Fashion-MNIST with Sequential.fit.
//   bazel run -c opt //examples:fashion_mnist_mlp -- [--epochs 5] [--batch_size 32]
#include <cstdio>
#include <iostream>

#include "examples/example_flags.h"
#include "kiln.h"
#include "nn/applications/applications.h"

int main(int argc, char** argv) {
  using namespace kiln;
  using namespace kiln::nn;
  cpu::apply_best_known_config(argc, argv);
  try {
    int64_t epochs = examples::int_flag(argc, argv, "epochs", 5);
    int64_t batch_size = examples::int_flag(argc, argv, "batch_size", 32);
    set_global_policy(examples::flag(argc, argv, "policy", "float32"));
    set_global_seed(examples::int_flag(argc, argv, "seed", 1234));

    data::FashionMnist fm = data::load_fashion_mnist();
    auto train = data::Dataset::from_tensor_slices(fm.x_train, fm.y_train).shuffle(60000, 7).batch(batch_size).prefetch(2);
    auto test = data::Dataset::from_tensor_slices(fm.x_test, fm.y_test).batch(512);

    auto model_ptr = applications::fashion_mnist_mlp();
    Sequential& model = *model_ptr;
    model.build({28, 28, 1}, DType::u8);
    std::cout << model.summary();
    model.compile(optim::Adam(1e-3), SparseCategoricalCrossentropy(/*from_logits=*/true), {"accuracy"});
    model.fit(train, {.epochs = epochs, .validation_data = test});
    Logs result = model.evaluate(test);
    std::printf("test loss %.4f, test accuracy %.4f\n", result["loss"], result["accuracy"]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fashion_mnist_mlp: %s\n", e.what());
    return 1;
  }
  return 0;
}
