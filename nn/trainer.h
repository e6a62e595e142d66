#pragma once
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/gradient_tape.h"
#include "data/dataset.h"
#include "nn/model.h"

namespace kiln::nn {

class Trainer;

struct BatchOutput {
  Tensor loss;         // scalar f32
  Tensor predictions;  // model outputs for the batch (for metrics)
  Tensor targets;
  int64_t batch_size = 0;
};

// Thrown by a callback (or hook) to end the training run cleanly, as in pytorch-accelerated;
// Trainer calls on_stop_training_error and then finishes the run.
class StopTrainingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Callbacks see the trainer and run after the hook of the same moment. The pytorch-accelerated
// events are here, plus on_epoch_end, which fires once per epoch after training and evaluation
// with every log (the Keras callbacks use it).
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_init_end(Trainer&) {}
  virtual void on_train_run_begin(Trainer&) {}
  virtual void on_train_run_end(Trainer&) {}
  virtual void on_stop_training_error(Trainer&) {}
  virtual void on_train_epoch_begin(Trainer&) {}
  virtual void on_train_epoch_end(Trainer&) {}
  virtual void on_eval_epoch_begin(Trainer&) {}
  virtual void on_eval_epoch_end(Trainer&) {}
  virtual void on_train_step_begin(Trainer&) {}
  virtual void on_train_step_end(Trainer&, const BatchOutput&) {}
  virtual void on_eval_step_begin(Trainer&) {}
  virtual void on_eval_step_end(Trainer&, const BatchOutput&) {}
  virtual void on_epoch_end(Trainer&, int64_t epoch, Logs& logs) {}
  // In data-parallel training, true runs this callback on rank 0 only (it prints or writes
  // files); every other callback runs on every rank and sees the same global logs.
  virtual bool rank_zero_only() const { return false; }
};

struct TrainOptions {
  int64_t num_epochs = 1;
  int64_t initial_epoch = 0;
  int64_t steps_per_epoch = -1;
  int verbose = 1;  // progress output, as FitOptions::verbose
  // Data parallelism (nn/strategy.h): this rank trains on its share of every batch with
  // averaged gradients; only rank 0 runs the progress bar and rank_zero_only() callbacks.
  std::shared_ptr<TrainingStrategy> strategy;
};

// The training loop, after pytorch-accelerated's Trainer: subclass it and override the hooks
// to customise a step; pass callbacks to observe or stop the run. Model::fit and
// Model::evaluate run this same loop.
class Trainer {
 public:
  Trainer(Model& model, const Loss& loss, optim::Optimizer& optimizer,
          std::vector<std::shared_ptr<Callback>> callbacks = {}, std::vector<std::string> metrics = {});
  virtual ~Trainer() = default;

  History train(const data::Dataset& train_dataset, const std::optional<data::Dataset>& eval_dataset = std::nullopt,
                const TrainOptions& options = {});
  Logs evaluate(const data::Dataset& dataset, int verbose = 0);

  // ---- hooks ----
  virtual data::Dataset create_train_dataloader(const data::Dataset& dataset) { return dataset; }
  virtual data::Dataset create_eval_dataloader(const data::Dataset& dataset) { return dataset; }
  // A schedule to install on the optimizer for this run; nullptr keeps the optimizer's own.
  virtual std::shared_ptr<optim::LearningRateSchedule> create_scheduler() { return nullptr; }
  virtual void training_run_start() {}
  virtual void training_run_end() {}
  virtual void train_epoch_start() {}
  virtual void train_epoch_end() {}
  virtual void eval_epoch_start() {}
  virtual void eval_epoch_end() {}
  // Runs while the step's GradientTape records.
  virtual BatchOutput calculate_train_batch_loss(const data::Batch& batch);
  virtual void backward_step(const BatchOutput& output);  // fills gradients()
  virtual void optimizer_step();
  virtual void scheduler_step() {}  // schedules follow the optimizer's step count already
  virtual void optimizer_zero_grad();
  virtual BatchOutput calculate_eval_batch_loss(const data::Batch& batch);

  // ---- state ----
  Model& model() { return model_; }
  optim::Optimizer& optimizer() { return optimizer_; }
  const Loss& loss() const { return *loss_; }
  std::vector<Tensor>& gradients() { return grads_; }
  int64_t epoch() const { return epoch_; }
  int64_t num_epochs() const { return options_.num_epochs; }
  int64_t step_in_epoch() const { return step_in_epoch_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t eval_steps() const { return eval_steps_; }
  int verbose() const { return options_.verbose; }
  const Logs& logs() const { return logs_; }
  const History& history() const { return history_; }
  // Current values of the running training (or, during evaluation, evaluation) metrics.
  Logs running_metrics() const;
  bool in_eval() const { return in_eval_; }
  // Set by callbacks (EarlyStopping, TerminateOnNaN) to end the run after this step/epoch.
  bool stop_training = false;
  // The data-parallel strategy of this run (nullptr for one process).
  TrainingStrategy* strategy() const { return options_.strategy.get(); }
  // From on_train_run_begin only (BackupAndRestore): the run starts at `epoch` instead of its
  // initial_epoch, with `done` as the History of the epochs before it.
  void resume_at(int64_t epoch, History done);

 private:
  void call(void (Callback::*event)(Trainer&));
  void run_eval_epoch(const data::Dataset& dataset, const std::string& prefix);
  void update_metrics(const BatchOutput& out);
  void reduce_metrics();  // over the strategy's ranks

  Model& model_;
  std::unique_ptr<Loss> loss_;
  optim::Optimizer& optimizer_;
  std::vector<std::shared_ptr<Callback>> callbacks_;
  std::vector<std::string> metric_names_;
  std::unique_ptr<Mean> loss_metric_;
  std::vector<std::unique_ptr<Metric>> metrics_;
  std::unique_ptr<GradientTape> tape_;
  std::vector<Tensor> grads_;
  TrainOptions options_;
  int64_t epoch_ = 0, step_in_epoch_ = 0, steps_per_epoch_ = -1, eval_steps_ = -1;
  bool in_eval_ = false, in_run_begin_ = false;
  Logs logs_;
  History history_;
};

}  // namespace kiln::nn
