// The Keras image-classification CNN on Fashion-MNIST: Rescaling, three Conv2D+MaxPooling2D
// blocks (16/32/64 filters), Dense(128), Dense(10); Adam and sparse categorical cross-entropy.
//   bazel run -c opt //examples:fashion_mnist_cnn -- [--epochs 5] [--batch_size 32] [--policy mixed_bfloat16]
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
    int64_t batch_size = examples::int_flag(argc, argv, "batch_size", 32);  // Keras fit() default
    set_global_policy(examples::flag(argc, argv, "policy", "float32"));
    set_global_seed(examples::int_flag(argc, argv, "seed", 1234));
    std::cout << cpu::isa_report() << "\n";

    data::FashionMnist fm = data::load_fashion_mnist();
    auto train = data::Dataset::from_tensor_slices(fm.x_train, fm.y_train).shuffle(60000, 42).batch(batch_size).prefetch(2);
    auto test = data::Dataset::from_tensor_slices(fm.x_test, fm.y_test).batch(512);

    auto model_ptr = applications::keras_cnn();
    Sequential& model = *model_ptr;
    model.build({28, 28, 1}, DType::u8);
    std::cout << model.summary();
    model.compile(optim::Adam(1e-3), SparseCategoricalCrossentropy(/*from_logits=*/true), {"accuracy"});
    model.fit(train, {.epochs = epochs, .validation_data = test});
    Logs result = model.evaluate(test);
    std::printf("test loss %.4f, test accuracy %.4f\n", result["loss"], result["accuracy"]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fashion_mnist_cnn: %s\n", e.what());
    return 1;
  }
  return 0;
}
