// A pytorch-accelerated style Trainer subclass: a custom loss step with label smoothing,
// a cosine schedule from create_scheduler, and a callback that prints and early-stops.
//   bazel run -c opt //examples:trainer_subclass -- [--epochs 3] [--smoke]
#include <cstdio>

#include "examples/example_data.h"
#include "examples/example_flags.h"
#include "kiln.h"

using namespace kiln;
using namespace kiln::nn;

class SmoothedTrainer : public Trainer {
 public:
  SmoothedTrainer(Model& model, optim::Optimizer& opt, int64_t total_steps, std::vector<std::shared_ptr<Callback>> cbs)
      : Trainer(model, SparseCategoricalCrossentropy(true), opt, std::move(cbs), {"accuracy"}),
        total_steps_(total_steps) {}

  std::shared_ptr<optim::LearningRateSchedule> create_scheduler() override {
    return std::make_shared<optim::LinearWarmup>(100, std::make_shared<optim::CosineDecay>(2e-3f, total_steps_, 0.05f));
  }

  // Label smoothing (0.1) on top of the compiled loss: trains against soft targets.
  BatchOutput calculate_train_batch_loss(const data::Batch& batch) override {
    Tensor logits = model()(batch.x, /*training=*/true);
    Tensor targets = one_hot(batch.y, 10);
    Tensor loss = CategoricalCrossentropy(/*from_logits=*/true, /*label_smoothing=*/0.1f)(targets, logits);
    return {loss, logits, batch.y, batch.x.shape()[0]};
  }

 private:
  int64_t total_steps_;
};

class PrintLr : public Callback {
 public:
  void on_train_epoch_end(Trainer& t) override {
    std::printf("  [callback] epoch %lld done, learning rate now %.6f\n", (long long)t.epoch(), t.optimizer().learning_rate());
  }
};

int main(int argc, char** argv) {
  cpu::apply_best_known_config(argc, argv);
  try {
    bool smoke = examples::switch_flag(argc, argv, "smoke");
    int64_t epochs = examples::int_flag(argc, argv, "epochs", 3);
    set_global_seed(examples::int_flag(argc, argv, "seed", 1234));
    data::FashionMnist fm = examples::load_example_data(smoke);
    auto train = data::Dataset::from_tensor_slices(fm.x_train, fm.y_train).shuffle(60000, 5).batch(64).prefetch(2);
    auto test = data::Dataset::from_tensor_slices(fm.x_test, fm.y_test).batch(512);
    Sequential model({Rescaling(1.f / 255), Flatten(), Dense(256, "relu"), Dropout(0.2f), Dense(10)}, "mlp");
    optim::AdamW optimizer({.learning_rate = 2e-3f, .weight_decay = 1e-4f});
    SmoothedTrainer trainer(model, optimizer, epochs * train.cardinality(),
                            {std::make_shared<PrintLr>(), std::make_shared<EarlyStopping>("val_accuracy", 0.0, 1)});
    TrainOptions opts;
    opts.num_epochs = epochs;
    History h = trainer.train(train, test, opts);
    std::printf("final validation accuracy %.4f after %zu epochs\n", h.history["val_accuracy"].back(), h.epochs.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trainer_subclass: %s\n", e.what());
    return 1;
  }
  return 0;
}
