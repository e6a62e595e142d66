// examples/custom_training_loop.cc made data-parallel (Nano's @nano(num_processes)). The
// changes: the loop runs inside dist::launch, each rank takes its share of every global batch
// (dist::shard), and dist::DistributedGradientTape averages the gradients over the ranks.
//   bazel run -c opt //examples:distributed_custom_loop -- [--num_processes 2] [--epochs 2] [--smoke]
#include <chrono>
#include <cstdio>

#include "dist/dist.h"
#include "examples/example_data.h"
#include "examples/example_flags.h"
#include "kiln.h"

int main(int argc, char** argv) {
  using namespace kiln;
  using namespace kiln::nn;
  cpu::apply_best_known_config(argc, argv);
  try {
    bool smoke = examples::switch_flag(argc, argv, "smoke");
    int num_processes = static_cast<int>(examples::int_flag(argc, argv, "num_processes", 2));
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

    dist::launch(num_processes, [&] {
      optim::Adam optimizer(1e-3);
      SparseCategoricalCrossentropy loss_fn(/*from_logits=*/true);
      auto train_acc = make_metric("accuracy", loss_fn);
      for (const Variable& v : model.variables()) dist::broadcast(v.value());  // rank 0's weights everywhere
      data::Dataset mine = dist::shard(train);                                  // this rank's share of each batch
      for (int64_t epoch = 0; epoch < epochs; ++epoch) {
        auto start = std::chrono::steady_clock::now();
        mine.set_epoch(epoch);
        data::BatchIterator it = mine.begin_iteration();
        int64_t step = 0;
        while (auto batch = it.next()) {
          Tensor loss, logits;
          std::vector<Tensor> grads;
          {
            dist::DistributedGradientTape tape;  // was: GradientTape tape;
            logits = model(batch->x, /*training=*/true);
            loss = loss_fn(batch->y, logits);
            grads = tape.gradient(loss, model.trainable_variables());
          }
          optimizer.apply_gradients(grads, model.trainable_variables());
          train_acc->update_state(batch->y, logits);
          if (dist::rank() == 0 && step % 200 == 0) {
            std::printf("epoch %lld step %lld: loss %.4f (rank 0's share)\n", (long long)epoch, (long long)step,
                        loss.item());
          }
          ++step;
        }
        // The epoch's accuracy over every rank's examples.
        auto [total, count] = train_acc->state();
        Tensor sums = Tensor::from_vector({float(total), float(count)}, {2});
        dist::allreduce(sums);
        std::vector<float> s = sums.to_vector();
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (dist::rank() == 0) {
          std::printf("epoch %lld: train accuracy %.4f over %d ranks, %.1fs\n", (long long)epoch, s[0] / s[1],
                      dist::world_size(), secs);
        }
        train_acc->reset_state();
      }
    }, {.return_variables = model.variables()});  // rank 0's trained weights come back here

    auto val_acc = make_metric("accuracy", SparseCategoricalCrossentropy(true));
    data::BatchIterator vit = val.begin_iteration();
    while (auto batch = vit.next()) val_acc->update_state(batch->y, model(batch->x, false));
    std::printf("validation accuracy %.4f\n", val_acc->result());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distributed_custom_loop: %s\n", e.what());
    return 1;
  }
  return 0;
}
