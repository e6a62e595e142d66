#include "nn/trainer.h"

#include "nn/progress_bar.h"

#include <algorithm>
#include "tensor/ops/ops.h"

namespace kiln::nn {

Trainer::Trainer(Model& model, const Loss& loss, optim::Optimizer& optimizer,
                 std::vector<std::shared_ptr<Callback>> callbacks, std::vector<std::string> metrics)
    : model_(model), loss_(loss.clone()), optimizer_(optimizer), callbacks_(std::move(callbacks)),
      metric_names_(std::move(metrics)) {
  loss_metric_ = std::make_unique<Mean>("loss");
  for (const std::string& m : metric_names_) metrics_.push_back(make_metric(m, *loss_));
  call(&Callback::on_init_end);
}

namespace {
// Adds a ProgressBar in front of the callbacks for one run and removes it however the run ends.
class ProgressScope {
 public:
  ProgressScope(std::vector<std::shared_ptr<Callback>>& callbacks, int verbose) : callbacks_(callbacks) {
    if (verbose > 0) {
      bar_ = std::make_shared<ProgressBar>();
      callbacks_.insert(callbacks_.begin(), bar_);
    }
  }
  ~ProgressScope() {
    if (bar_) callbacks_.erase(std::find(callbacks_.begin(), callbacks_.end(), bar_));
  }

 private:
  std::vector<std::shared_ptr<Callback>>& callbacks_;
  std::shared_ptr<Callback> bar_;
};

// On ranks other than 0, leaves out the callbacks that print or write files for one run.
class RankZeroScope {
 public:
  RankZeroScope(std::vector<std::shared_ptr<Callback>>& callbacks, const TrainingStrategy* strategy)
      : callbacks_(callbacks), saved_(callbacks) {
    if (!strategy || strategy->rank() == 0) return;
    std::erase_if(callbacks_, [](const std::shared_ptr<Callback>& cb) { return cb->rank_zero_only(); });
  }
  ~RankZeroScope() { callbacks_ = saved_; }

 private:
  std::vector<std::shared_ptr<Callback>>& callbacks_;
  std::vector<std::shared_ptr<Callback>> saved_;
};
}  // namespace

void Trainer::call(void (Callback::*event)(Trainer&)) {
  for (auto& cb : callbacks_) ((*cb).*event)(*this);
}

Logs Trainer::running_metrics() const {
  Logs out{{"loss", loss_metric_->result()}};
  for (const auto& m : metrics_) out[m->name()] = m->result();
  return out;
}

void Trainer::reduce_metrics() {
  if (!options_.strategy) return;
  std::vector<double> v;
  auto [t, c] = loss_metric_->state();
  v.insert(v.end(), {t, c});
  for (auto& m : metrics_) {
    auto [mt, mc] = m->state();
    v.insert(v.end(), {mt, mc});
  }
  options_.strategy->sum(v);
  loss_metric_->set_state(v[0], v[1]);
  for (size_t i = 0; i < metrics_.size(); ++i) metrics_[i]->set_state(v[2 * i + 2], v[2 * i + 3]);
}

void Trainer::update_metrics(const BatchOutput& out) {
  loss_metric_->update(out.loss.item(), static_cast<double>(out.batch_size));
  if (metrics_.empty()) return;
  Tensor preds = cast(stop_gradient(out.predictions), DType::f32);
  for (auto& m : metrics_) m->update_state(out.targets, preds);
}

BatchOutput Trainer::calculate_train_batch_loss(const data::Batch& batch) {
  Tensor preds = model_(batch.x, /*training=*/true);
  return {(*loss_)(batch.y, preds), preds, batch.y, batch.x.shape()[0]};
}

void Trainer::backward_step(const BatchOutput& output) {
  grads_ = tape_->gradient(output.loss, model_.trainable_variables());
}

void Trainer::optimizer_step() { optimizer_.apply_gradients(grads_, model_.trainable_variables()); }

void Trainer::optimizer_zero_grad() { grads_.clear(); }

BatchOutput Trainer::calculate_eval_batch_loss(const data::Batch& batch) {
  Tensor preds = model_(batch.x, /*training=*/false);
  return {(*loss_)(batch.y, preds), preds, batch.y, batch.x.shape()[0]};
}

namespace {
std::string empty_dataset_message(const std::string& where) {
  return where + ": the dataset is empty (it yields no batches); a loss over no data is undefined";
}
void check_not_empty(const data::Dataset& ds, const std::string& where) {
  if (ds.cardinality() == 0) throw std::invalid_argument(empty_dataset_message(where));
}
// The training step is per thread; leave none behind when the run ends, however it ends.
struct TrainingStepScope {
  ~TrainingStepScope() { set_training_step(-1); }
};
}  // namespace

void Trainer::run_eval_epoch(const data::Dataset& dataset, const std::string& prefix) {
  in_eval_ = true;
  loss_metric_->reset_state();
  for (auto& m : metrics_) m->reset_state();
  eval_steps_ = dataset.cardinality();
  eval_epoch_start();
  call(&Callback::on_eval_epoch_begin);
  data::BatchIterator it = dataset.begin_iteration();
  int64_t batches = 0;
  while (auto batch = it.next()) {
    ++batches;
    call(&Callback::on_eval_step_begin);
    BatchOutput out = calculate_eval_batch_loss(*batch);
    update_metrics(out);
    for (auto& cb : callbacks_) cb->on_eval_step_end(*this, out);
  }
  if (batches == 0) {
    in_eval_ = false;
    throw std::invalid_argument(empty_dataset_message(prefix.empty() ? "evaluate" : "fit (validation_data)"));
  }
  reduce_metrics();
  for (auto& [k, v] : running_metrics()) logs_[prefix + k] = v;
  eval_epoch_end();
  call(&Callback::on_eval_epoch_end);
  in_eval_ = false;
}

History Trainer::train(const data::Dataset& train_in, const std::optional<data::Dataset>& eval_in,
                       const TrainOptions& options) {
  if (options.num_epochs < options.initial_epoch) {
    throw std::invalid_argument("Trainer: initial_epoch " + std::to_string(options.initial_epoch) +
                                " is past num_epochs " + std::to_string(options.num_epochs));
  }
  options_ = options;
  TrainingStrategy* strategy = options.strategy.get();
  if (strategy && strategy->rank() != 0) options_.verbose = 0;
  RankZeroScope rank_zero(callbacks_, strategy);
  ProgressScope progress(callbacks_, options_.verbose);
  data::Dataset train_ds = create_train_dataloader(train_in);
  if (!train_ds.batched()) throw std::invalid_argument("Trainer: the training dataset must be batched (call batch())");
  check_not_empty(train_ds, "fit");
  std::optional<data::Dataset> eval_ds;
  if (eval_in) {
    eval_ds = create_eval_dataloader(*eval_in);
    if (!eval_ds->batched()) throw std::invalid_argument("Trainer: the validation dataset must be batched (call batch())");
    check_not_empty(*eval_ds, "fit (validation_data)");
  }
  if (strategy) {
    // The dataset's batch is the global batch; each rank computes its share of it.
    train_ds = strategy->shard(train_ds);
    if (eval_ds) eval_ds = strategy->shard(*eval_ds);
    strategy->broadcast_variables(model_.variables());
  }
  if (auto schedule = create_scheduler()) optimizer_.set_schedule(schedule);
  steps_per_epoch_ = options.steps_per_epoch > 0 ? options.steps_per_epoch : train_ds.cardinality();
  if (steps_per_epoch_ < 0) {
    throw std::invalid_argument("Trainer: the training dataset is infinite (repeat()); set steps_per_epoch");
  }
  stop_training = false;
  history_ = History();
  data::BatchIterator shared_iterator = train_ds.begin_iteration();  // used when steps_per_epoch is set
  TrainingStepScope step_scope;
  training_run_start();
  in_run_begin_ = true;
  try {
    call(&Callback::on_train_run_begin);
  } catch (...) {
    in_run_begin_ = false;
    throw;
  }
  in_run_begin_ = false;
  try {
    for (epoch_ = options_.initial_epoch; epoch_ < options.num_epochs && !stop_training; ++epoch_) {
      logs_.clear();
      loss_metric_->reset_state();
      for (auto& m : metrics_) m->reset_state();
      train_epoch_start();
      call(&Callback::on_train_epoch_begin);
      std::optional<data::BatchIterator> epoch_iterator;
      if (options.steps_per_epoch <= 0) {
        train_ds.set_epoch(epoch_);
        epoch_iterator.emplace(train_ds.begin_iteration());
      }
      data::BatchIterator& it = epoch_iterator ? *epoch_iterator : shared_iterator;
      for (step_in_epoch_ = 0; step_in_epoch_ < steps_per_epoch_ && !stop_training; ++step_in_epoch_) {
        std::optional<data::Batch> batch = it.next();
        if (!batch) break;
        if (!batch->y.defined()) throw std::invalid_argument("Trainer: training batches need labels");
        call(&Callback::on_train_step_begin);
        set_training_step(optimizer_.iterations());
        BatchOutput out;
        {
          // The tape lives exactly for the forward and backward of this step, even if a hook throws.
          struct TapeScope {
            std::unique_ptr<GradientTape>& tape;
            ~TapeScope() { tape.reset(); }
          } scope{tape_};
          tape_ = std::make_unique<GradientTape>();
          out = calculate_train_batch_loss(*batch);
          if (strategy) strategy->before_backward(*tape_, model_.trainable_variables(), out.batch_size);
          backward_step(out);
        }
        if (strategy) grads_ = strategy->reduce_gradients(grads_);
        optimizer_step();
        scheduler_step();
        optimizer_zero_grad();
        update_metrics(out);
        for (auto& cb : callbacks_) cb->on_train_step_end(*this, out);
        if (strategy) stop_training = strategy->any(stop_training);  // no rank may wait for another
      }
      if (step_in_epoch_ == 0 && !stop_training) {
        throw std::invalid_argument(options.steps_per_epoch > 0
                                        ? "fit: the training data ran out before epoch " + std::to_string(epoch_ + 1) +
                                              " (steps_per_epoch=" + std::to_string(options.steps_per_epoch) +
                                              " needs more batches; use repeat())"
                                        : empty_dataset_message("fit"));
      }
      reduce_metrics();
      logs_ = running_metrics();
      // BatchNorm normalizes with per-rank batch statistics; its moving statistics are
      // averaged over the ranks once per epoch, so every rank evaluates the same model.
      if (strategy) strategy->average_variables(model_.non_trainable_variables());
      train_epoch_end();
      call(&Callback::on_train_epoch_end);
      if (eval_ds) run_eval_epoch(*eval_ds, "val_");
      logs_["lr"] = optimizer_.learning_rate();
      for (auto& cb : callbacks_) cb->on_epoch_end(*this, epoch_, logs_);
      if (strategy) stop_training = strategy->any(stop_training);
      history_.epochs.push_back(epoch_);
      for (auto& [k, v] : logs_) history_.history[k].push_back(v);
    }
  } catch (const StopTrainingError&) {
    call(&Callback::on_stop_training_error);
  }
  training_run_end();
  call(&Callback::on_train_run_end);
  return history_;
}

void Trainer::resume_at(int64_t epoch, History done) {
  if (!in_run_begin_) throw std::logic_error("Trainer::resume_at: only from a callback's on_train_run_begin");
  if (epoch < 0 || epoch > options_.num_epochs) {
    throw std::invalid_argument("Trainer::resume_at: epoch " + std::to_string(epoch) + " is outside this run's 0.." +
                                std::to_string(options_.num_epochs) + " epochs");
  }
  options_.initial_epoch = epoch;
  history_ = std::move(done);
}

Logs Trainer::evaluate(const data::Dataset& dataset, int verbose) {
  options_.verbose = verbose;
  options_.strategy = nullptr;  // evaluate() runs on this process's data alone
  ProgressScope progress(callbacks_, verbose);
  data::Dataset ds = create_eval_dataloader(dataset);
  if (!ds.batched()) throw std::invalid_argument("evaluate: the dataset must be batched (call batch())");
  check_not_empty(ds, "evaluate");
  logs_.clear();
  run_eval_epoch(ds, "");
  return logs_;
}

}  // namespace kiln::nn
