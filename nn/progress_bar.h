#pragma once
#include <chrono>

#include "nn/trainer.h"

namespace kiln::nn {

// Keras-style progress: on a terminal, "Epoch 1/5" then a live bar
//   120/469 [======>.......................] - ETA: 12s - loss: 0.4321 - accuracy: 0.8456
// finished with the epoch's time per step and validation metrics. When stdout is not a
// terminal (or verbose is 2) it prints one line per epoch and nothing else.
class ProgressBar : public Callback {
 public:
  ProgressBar();
  void on_train_run_begin(Trainer&) override { training_ = true; }
  void on_train_run_end(Trainer&) override { training_ = false; }
  void on_train_epoch_begin(Trainer& t) override;
  void on_train_step_end(Trainer& t, const BatchOutput&) override;
  void on_eval_epoch_begin(Trainer& t) override;
  void on_eval_epoch_end(Trainer& t) override;
  void on_epoch_end(Trainer& t, int64_t epoch, Logs& logs) override;
  bool rank_zero_only() const override { return true; }

  static std::string format_logs(const Logs& logs);
  static std::string bar(int64_t done, int64_t total, int width = 30);

 private:
  bool interactive(const Trainer& t) const { return tty_ && t.verbose() == 1; }
  bool tty_;
  bool training_ = false;
  std::chrono::steady_clock::time_point epoch_start_, last_draw_;
};

}  // namespace kiln::nn
