#pragma once
// The Sequential.fit flow both Fashion-MNIST examples share: flags, data, summary, compile,
// fit with validation, evaluate.
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>

#include "examples/example_data.h"
#include "examples/example_flags.h"
#include "kiln.h"

namespace kiln::examples {

// Flags: --epochs (5; 2 under --smoke), --batch_size (32, the Keras default), --policy (float32 |
// mixed_bfloat16), --seed, --smoke (examples/example_data.h). Returns the process exit code.
inline int fit_fashion_mnist(int argc, char** argv, const char* program,
                             const std::function<std::unique_ptr<nn::Sequential>()>& make_model) {
  cpu::apply_best_known_config(argc, argv);
  try {
    bool smoke = switch_flag(argc, argv, "smoke");
    int64_t epochs = int_flag(argc, argv, "epochs", smoke ? 2 : 5);
    int64_t batch_size = int_flag(argc, argv, "batch_size", 32);
    nn::set_global_policy(flag(argc, argv, "policy", "float32"));
    set_global_seed(int_flag(argc, argv, "seed", 1234));
    std::cout << cpu::isa_report() << "\n";

    data::FashionMnist fm = load_example_data(smoke);
    auto train = data::Dataset::from_tensor_slices(fm.x_train, fm.y_train).shuffle(60000, 42).batch(batch_size).prefetch(2);
    auto test = data::Dataset::from_tensor_slices(fm.x_test, fm.y_test).batch(512);

    std::unique_ptr<nn::Sequential> model = make_model();
    model->build({28, 28, 1}, DType::u8);
    std::cout << model->summary();
    model->compile(optim::Adam(1e-3), nn::SparseCategoricalCrossentropy(/*from_logits=*/true), {"accuracy"});
    model->fit(train, {.epochs = epochs, .validation_data = test});
    nn::Logs result = model->evaluate(test);
    std::printf("test loss %.4f, test accuracy %.4f\n", result["loss"], result["accuracy"]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
  return 0;
}

}  // namespace kiln::examples
