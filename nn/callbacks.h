#pragma once
#include <functional>
#include <string>
#include <vector>

#include "nn/backup_and_restore.h"  // Keras's BackupAndRestore, in a file of its own
#include "nn/trainer.h"

namespace kiln::nn {

// Stops training when `monitor` has not improved by min_delta for `patience` epochs.
// mode "auto" maximizes names containing "acc", minimizes the rest.
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(std::string monitor = "val_loss", double min_delta = 0, int patience = 0,
                         std::string mode = "auto", bool restore_best_weights = false);
  void on_train_run_begin(Trainer& t) override;
  void on_epoch_end(Trainer& t, int64_t epoch, Logs& logs) override;
  int64_t stopped_epoch() const { return stopped_epoch_; }
  double best() const { return best_; }

 private:
  std::string monitor_;
  double min_delta_;
  int patience_;
  bool maximize_;
  bool restore_;
  int wait_ = 0;
  double best_ = 0;
  bool has_best_ = false;
  int64_t stopped_epoch_ = -1;
  std::vector<Tensor> best_weights_;
};

// Saves after each epoch; with save_best_only, only when `monitor` improves. "{epoch}" in
// filepath becomes the 1-based epoch. Saves a full checkpoint (weights, optimizer state,
// next epoch) unless save_weights_only.
class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(std::string filepath, std::string monitor = "val_loss", bool save_best_only = true,
                           std::string mode = "auto", bool save_weights_only = false);
  void on_epoch_end(Trainer& t, int64_t epoch, Logs& logs) override;
  bool rank_zero_only() const override { return true; }
  int saves() const { return saves_; }

 private:
  std::string filepath_, monitor_;
  bool save_best_only_, maximize_, weights_only_;
  bool has_best_ = false;
  double best_ = 0;
  int saves_ = 0;
};

// Writes "epoch,<log keys...>" rows, one per epoch; the file is rewritten atomically each epoch.
class CSVLogger : public Callback {
 public:
  explicit CSVLogger(std::string filename, char separator = ',', bool append = false);
  void on_train_run_begin(Trainer& t) override;
  void on_epoch_end(Trainer& t, int64_t epoch, Logs& logs) override;
  bool rank_zero_only() const override { return true; }

 private:
  std::string filename_;
  char sep_;
  bool append_;
  std::vector<std::string> keys_;
  std::string content_;
};

// Keras's LearningRateScheduler: at the start of each epoch, sets the optimizer's learning
// rate to schedule(epoch, current_lr), epoch 0-based.
//
// It needs an optimizer with a constant learning rate. One driven by a LearningRateSchedule
// (CosineDecay, LinearWarmup, ...) makes fit throw before the first step, as Keras's
// learning_rate setter does: overwriting the schedule would quietly stop it, and scaling it
// would apply two schedules where the user wrote one. Use one mechanism: a per-epoch rule
// here, or a per-step schedule on the optimizer.
class LearningRateScheduler : public Callback {
 public:
  explicit LearningRateScheduler(std::function<float(int64_t epoch, float lr)> schedule);
  void on_train_run_begin(Trainer& t) override;
  void on_train_epoch_begin(Trainer& t) override;

 private:
  std::function<float(int64_t, float)> schedule_;
};

// Stops training at the first step whose loss is NaN or infinite.
class TerminateOnNaN : public Callback {
 public:
  void on_train_step_end(Trainer& t, const BatchOutput& out) override;
  bool terminated() const { return terminated_; }

 private:
  bool terminated_ = false;
};

}  // namespace kiln::nn
