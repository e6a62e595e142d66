#include "nn/backup_and_restore.h"

#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "base/files.h"
#include "nn/checkpoint.h"
#include "nn/history_text.h"

namespace kiln::nn {
namespace {

const char* kHistoryEntry = "meta/history";

std::string checked_dir(std::string dir) {
  if (dir.empty()) throw std::invalid_argument("BackupAndRestore: empty backup_dir");
  return dir;
}

bool exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

// The backup's bytes, validated; the previous backup when the latest cannot be read and
// there is one. "" when there is no backup.
std::string read_backup(const std::string& latest, const std::string& previous) {
  if (!exists(latest)) return exists(previous) ? base::read_file(previous) : "";
  std::string bytes = base::read_file(latest);
  try {
    parse_checkpoint(bytes, latest);
    return bytes;
  } catch (const std::exception& e) {
    if (!exists(previous)) {
      throw std::runtime_error(std::string("BackupAndRestore: cannot restore the backup: ") + e.what() +
                               " (remove it to start training from scratch)");
    }
    return base::read_file(previous);
  }
}

}  // namespace

BackupAndRestore::BackupAndRestore(std::string backup_dir, std::string save_freq, bool double_checkpoint,
                                   bool delete_checkpoint)
    : dir_(checked_dir(std::move(backup_dir))),
      latest_(dir_ + "/latest.ckpt"),
      previous_(latest_ + ".bkp"),
      double_checkpoint_(double_checkpoint),
      delete_checkpoint_(delete_checkpoint) {
  if (save_freq != "epoch") {
    throw std::invalid_argument("BackupAndRestore: save_freq must be \"epoch\" or a number of batches, got \"" +
                                save_freq + "\"");
  }
}

BackupAndRestore::BackupAndRestore(std::string backup_dir, int64_t save_freq_batches, bool double_checkpoint,
                                   bool delete_checkpoint)
    : BackupAndRestore(std::move(backup_dir), "epoch", double_checkpoint, delete_checkpoint) {
  if (save_freq_batches < 1) {
    throw std::invalid_argument("BackupAndRestore: save_freq must be a positive number of batches, got " +
                                std::to_string(save_freq_batches));
  }
  every_batches_ = save_freq_batches;
}

bool BackupAndRestore::writes(const Trainer& t) { return !t.strategy() || t.strategy()->rank() == 0; }

void BackupAndRestore::on_train_run_begin(Trainer& t) {
  restored_epoch_ = -1;
  batches_since_save_ = 0;
  Model& model = t.model();
  if (model.variables().empty()) {
    throw std::invalid_argument("BackupAndRestore: the model '" + model.name() +
                                "' must be built before fit (call build(input_shape) or call it on a batch)");
  }
  // Rank 0 decides: its disk holds the backup; every rank restores the same bytes (or none).
  std::string bytes;
  if (writes(t)) bytes = read_backup(latest_, previous_);
  if (t.strategy()) t.strategy()->broadcast_bytes(bytes);
  if (bytes.empty()) return;
  NamedTensors entries = parse_checkpoint(bytes, latest_);
  History done;
  bool has_history = false;
  for (const auto& [name, tensor] : entries) {
    if (name != kHistoryEntry) continue;
    if (tensor.dtype() != DType::u8 || tensor.shape().size() != 1) {
      throw std::runtime_error("'" + latest_ + "': entry '" + name + "' is " + tensor.describe() + ", expected u8[n]");
    }
    done = history_from_text(std::string(static_cast<const char*>(tensor.raw_data()), tensor.nbytes()), latest_);
    has_history = true;
  }
  if (!has_history) throw std::runtime_error("'" + latest_ + "' is not a BackupAndRestore backup (no " + kHistoryEntry + ")");
  const int64_t epoch = model.load_training_state(entries, latest_);
  t.resume_at(epoch, std::move(done));
  restored_epoch_ = epoch;
}

void BackupAndRestore::save(Trainer& t, int64_t next_epoch, const History& history) {
  if (!writes(t)) return;
  std::filesystem::create_directories(dir_);
  NamedTensors entries = t.model().training_state(next_epoch);
  const std::string text = history_to_text(history);
  entries.emplace_back(kHistoryEntry, Tensor::from_bytes(text.data(), {int64_t(text.size())}, DType::u8));
  if (double_checkpoint_ && exists(latest_)) base::write_file_atomically(previous_, base::read_file(latest_));
  base::write_file_atomically(latest_, serialize_checkpoint(entries));
}

void BackupAndRestore::on_train_step_end(Trainer& t, const BatchOutput&) {
  if (every_batches_ == 0 || ++batches_since_save_ < every_batches_) return;
  batches_since_save_ = 0;
  save(t, t.epoch(), t.history());  // restarts this epoch, as Keras does
}

void BackupAndRestore::on_epoch_end(Trainer& t, int64_t epoch, Logs& logs) {
  if (every_batches_ != 0) return;
  History history = t.history();  // the trainer adds this epoch after its callbacks
  history.epochs.push_back(epoch);
  for (const auto& [k, v] : logs) history.history[k].push_back(v);
  save(t, epoch + 1, history);
}

void BackupAndRestore::on_train_run_end(Trainer& t) {
  if (!delete_checkpoint_ || !writes(t)) return;
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace kiln::nn
