// The Keras CNN on Fashion-MNIST trained by N data-parallel processes on this host, each
// pinned to its own cores (BigDL-Nano's fit(num_processes=N)):
//   bazel run -c opt //examples:distributed_fit -- [--num_processes 2] [--epochs 2] [--batch_size 64] [--smoke]
// fit relaunches this program under mpirun with N ranks, waits, and returns rank 0's History;
// the model here then holds the trained weights. On several hosts, run the same binary under
// your own launcher instead (fit then uses that world as it is):
//   mpirun -np 8 -H a:4,b:4 bazel-bin/examples/distributed_fit
#include <cstdio>
#include <iostream>

#include "dist/dist.h"
#include "examples/example_data.h"
#include "examples/example_flags.h"
#include "kiln.h"

int main(int argc, char** argv) {
  using namespace kiln;
  cpu::apply_best_known_config(argc, argv);
  try {
    bool smoke = examples::switch_flag(argc, argv, "smoke");
    int num_processes = static_cast<int>(examples::int_flag(argc, argv, "num_processes", 2));
    int64_t epochs = examples::int_flag(argc, argv, "epochs", 2);
    int64_t batch_size = examples::int_flag(argc, argv, "batch_size", 64);  // the global batch
    set_global_seed(examples::int_flag(argc, argv, "seed", 1234));

    data::FashionMnist fm = examples::load_example_data(smoke);
    auto train = data::Dataset::from_tensor_slices(fm.x_train, fm.y_train).shuffle(60000, 42).batch(batch_size).prefetch(2);
    auto test = data::Dataset::from_tensor_slices(fm.x_test, fm.y_test).batch(512);

    std::unique_ptr<nn::Sequential> model = nn::applications::keras_cnn();
    model->build({28, 28, 1}, DType::u8);
    model->compile(optim::Adam(1e-3), nn::SparseCategoricalCrossentropy(/*from_logits=*/true), {"accuracy"});
    // Each rank computes its share of every global batch of batch_size; gradients are averaged,
    // metrics reduced over the ranks, and only rank 0 prints the progress bar.
    nn::History h = model->fit(train, {.epochs = epochs, .validation_data = test, .num_processes = num_processes});
    std::printf("rank 0's history: final loss %.4f, val_accuracy %.4f\n", h.history["loss"].back(),
                h.history["val_accuracy"].back());
    nn::Logs result = model->evaluate(test);
    std::printf("evaluated here after fit: test loss %.4f, test accuracy %.4f\n", result["loss"], result["accuracy"]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distributed_fit: %s\n", e.what());
    return 1;
  }
  return 0;
}
