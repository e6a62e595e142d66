// The TensorFlow custom training loop ("Writing a training loop from scratch"), in Kiln:
// a functional model, a GradientTape per step, optimizer.apply_gradients, metrics by hand.
//   bazel run -c opt //examples:custom_training_loop -- [--epochs 2] [--smoke]
#include <chrono>
#include <cstdio>

#include "examples/example_data.h"
#include "examples/example_flags.h"
#include "kiln.h"

int main(int argc, char** argv) {
  using namespace kiln;
  using namespace kiln::nn;
  cpu::apply_best_known_config(argc, argv);
  try {
    bool smoke = examples::switch_flag(argc, argv, "smoke");
    int64_t epochs = examples::int_flag(argc, argv, "epochs", 2);
    set_global_seed(examples::int_flag(argc, argv, "seed", 1234));
    data::FashionMnist fm = examples::load_example_data(smoke);
    auto train = data::Dataset::from_tensor_slices(fm.x_train, fm.y_train).shuffle(60000, 3).batch(64).prefetch(2);
    auto val = data::Dataset::from_tensor_slices(fm.x_test, fm.y_test).batch(512);

    SymbolicTensor inputs = Input({28, 28, 1}, DType::u8);
    SymbolicTensor x = Rescaling(1.f / 255)(inputs);
    x = Flatten()(x);
    x = Dense(64, "relu")(x);
    x = Dense(64, "relu")(x);
    SymbolicTensor outputs = Dense(10)(x);
    Model model(inputs, outputs, "functional_mlp");

    optim::Adam optimizer(1e-3);
    SparseCategoricalCrossentropy loss_fn(/*from_logits=*/true);
    auto train_acc = make_metric("accuracy", loss_fn);
    auto val_acc = make_metric("accuracy", loss_fn);

    for (int64_t epoch = 0; epoch < epochs; ++epoch) {
      auto start = std::chrono::steady_clock::now();
      train.set_epoch(epoch);
      data::BatchIterator it = train.begin_iteration();
      int64_t step = 0;
      while (auto batch = it.next()) {
        Tensor loss, logits;
        std::vector<Tensor> grads;
        {
          GradientTape tape;
          logits = model(batch->x, /*training=*/true);
          loss = loss_fn(batch->y, logits);
          grads = tape.gradient(loss, model.trainable_variables());
        }
        optimizer.apply_gradients(grads, model.trainable_variables());
        train_acc->update_state(batch->y, logits);
        if (step % 200 == 0) std::printf("epoch %lld step %lld: loss %.4f\n", (long long)epoch, (long long)step, loss.item());
        ++step;
      }
      data::BatchIterator vit = val.begin_iteration();
      while (auto batch = vit.next()) val_acc->update_state(batch->y, model(batch->x, false));
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("epoch %lld: train accuracy %.4f, validation accuracy %.4f, %.1fs\n", (long long)epoch,
                  train_acc->result(), val_acc->result(), secs);
      train_acc->reset_state();
      val_acc->reset_state();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "custom_training_loop: %s\n", e.what());
    return 1;
  }
  return 0;
}
