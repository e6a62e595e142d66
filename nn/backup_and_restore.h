#pragma once
#include <cstdint>
#include <string>

#include "nn/trainer.h"

namespace kiln::nn {

// Keras's BackupAndRestore: backs up the training state to backup_dir at the end of every
// epoch (save_freq "epoch") or every save_freq batches, and a fit that starts while a backup
// is there restores it and continues from there. So a job killed mid-run and started again
// (the same program, model and fit arguments) continues from its last completed epoch and
// ends with the same weights, optimizer state and History as a run never interrupted.
//
// As in Keras: the model must be built before fit; the backup is deleted when fit completes
// (unless delete_checkpoint is false), and backup_dir belongs to this callback alone (it is
// removed whole). With double_checkpoint the previous backup is kept beside the latest and
// used when the latest cannot be read. A backup taken every save_freq batches restarts its
// epoch from the first batch with the weights of that moment (Keras's behaviour), so only
// "epoch" backups replay a run exactly.
//
// Kiln's backup is one file, backup_dir/latest.ckpt (a Kiln checkpoint: weights, optimizer
// state, the next epoch, and, beyond Keras, the History so far, so the resumed fit returns
// every epoch's logs), written atomically: a kill mid-write leaves the previous backup whole.
// In data-parallel training only rank 0 writes it; at restore rank 0 reads it and every rank
// gets its content, so the other hosts need not see rank 0's disk.
class BackupAndRestore : public Callback {
 public:
  explicit BackupAndRestore(std::string backup_dir, std::string save_freq = "epoch", bool double_checkpoint = false,
                            bool delete_checkpoint = true);
  BackupAndRestore(std::string backup_dir, int64_t save_freq_batches, bool double_checkpoint = false,
                   bool delete_checkpoint = true);

  void on_train_run_begin(Trainer& t) override;
  void on_train_step_end(Trainer& t, const BatchOutput& out) override;
  void on_epoch_end(Trainer& t, int64_t epoch, Logs& logs) override;
  void on_train_run_end(Trainer& t) override;

  // The epoch the last fit resumed from, or -1 when it found no backup.
  int64_t restored_epoch() const { return restored_epoch_; }
  const std::string& backup_path() const { return latest_; }

 private:
  void save(Trainer& t, int64_t next_epoch, const History& history);
  static bool writes(const Trainer& t);

  std::string dir_, latest_, previous_;
  int64_t every_batches_ = 0;  // 0: every epoch
  bool double_checkpoint_, delete_checkpoint_;
  int64_t batches_since_save_ = 0;
  int64_t restored_epoch_ = -1;
};

}  // namespace kiln::nn
