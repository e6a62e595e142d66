#include "nn/callbacks.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "base/files.h"

namespace kiln::nn {
namespace {

bool maximize_for(const std::string& monitor, const std::string& mode) {
  if (mode == "max") return true;
  if (mode == "min") return false;
  if (mode != "auto") throw std::invalid_argument("callback mode must be 'auto', 'min' or 'max', got '" + mode + "'");
  return monitor.find("acc") != std::string::npos || monitor.find("auc") != std::string::npos;
}

const double* find_monitor(const Logs& logs, const std::string& monitor, const char* who) {
  auto it = logs.find(monitor);
  if (it != logs.end()) return &it->second;
  static bool warned = false;
  if (!warned) {
    std::string available;
    for (auto& [k, v] : logs) available += (available.empty() ? "" : ", ") + k;
    std::fprintf(stderr, "%s: metric '%s' is not in the logs (available: %s); skipping\n", who, monitor.c_str(),
                 available.c_str());
    warned = true;
  }
  return nullptr;
}

}  // namespace

EarlyStopping::EarlyStopping(std::string monitor, double min_delta, int patience, std::string mode, bool restore)
    : monitor_(std::move(monitor)), min_delta_(std::fabs(min_delta)), patience_(patience),
      maximize_(maximize_for(monitor_, mode)), restore_(restore) {
  if (patience < 0) throw std::invalid_argument("EarlyStopping: patience must be >= 0");
}

void EarlyStopping::on_train_run_begin(Trainer&) {
  wait_ = 0;
  has_best_ = false;
  stopped_epoch_ = -1;
  best_weights_.clear();
}

void EarlyStopping::on_epoch_end(Trainer& t, int64_t epoch, Logs& logs) {
  const double* value = find_monitor(logs, monitor_, "EarlyStopping");
  if (!value) return;
  bool improved = !has_best_ || (maximize_ ? *value - min_delta_ > best_ : *value + min_delta_ < best_);
  if (improved) {
    best_ = *value;
    has_best_ = true;
    wait_ = 0;
    if (restore_) {
      best_weights_.clear();
      for (const Variable& v : t.model().variables()) best_weights_.push_back(v.value().clone_detached());
    }
    return;
  }
  if (++wait_ > patience_) {
    stopped_epoch_ = epoch;
    t.stop_training = true;
    if (restore_ && !best_weights_.empty()) {
      auto vars = t.model().variables();
      for (size_t i = 0; i < vars.size(); ++i) vars[i].value().copy_from(best_weights_[i]);
    }
  }
}

ModelCheckpoint::ModelCheckpoint(std::string filepath, std::string monitor, bool save_best_only, std::string mode,
                                 bool save_weights_only)
    : filepath_(std::move(filepath)), monitor_(std::move(monitor)), save_best_only_(save_best_only),
      maximize_(maximize_for(monitor_, mode)), weights_only_(save_weights_only) {}

void ModelCheckpoint::on_epoch_end(Trainer& t, int64_t epoch, Logs& logs) {
  if (save_best_only_) {
    const double* value = find_monitor(logs, monitor_, "ModelCheckpoint");
    if (!value) return;
    bool improved = !has_best_ || (maximize_ ? *value > best_ : *value < best_);
    if (!improved) return;
    best_ = *value;
    has_best_ = true;
  }
  std::string path = filepath_;
  auto pos = path.find("{epoch}");
  if (pos != std::string::npos) path.replace(pos, 7, std::to_string(epoch + 1));
  if (weights_only_) {
    t.model().save_weights(path);
  } else {
    t.model().save_checkpoint(path, epoch + 1);
  }
  ++saves_;
}

CSVLogger::CSVLogger(std::string filename, char separator, bool append)
    : filename_(std::move(filename)), sep_(separator), append_(append) {}

void CSVLogger::on_train_run_begin(Trainer&) {
  keys_.clear();
  content_.clear();
  if (append_) {
    std::ifstream in(filename_);
    if (in) {
      std::stringstream ss;
      ss << in.rdbuf();
      content_ = ss.str();
      std::string header = content_.substr(0, content_.find('\n'));
      std::stringstream hs(header);
      std::string key;
      bool first = true;
      while (std::getline(hs, key, sep_)) {
        if (!first) keys_.push_back(key);
        first = false;
      }
    }
  }
}

void CSVLogger::on_epoch_end(Trainer&, int64_t epoch, Logs& logs) {
  if (keys_.empty()) {
    for (auto& [k, v] : logs) keys_.push_back(k);
    content_ = "epoch";
    for (auto& k : keys_) content_ += sep_ + k;
    content_ += "\n";
  }
  std::ostringstream row;
  row.precision(9);
  row << epoch;
  for (auto& k : keys_) {
    row << sep_;
    auto it = logs.find(k);
    if (it != logs.end()) row << it->second;
  }
  content_ += row.str() + "\n";
  base::write_file_atomically(filename_, content_);
}

LearningRateScheduler::LearningRateScheduler(std::function<float(int64_t, float)> schedule)
    : schedule_(std::move(schedule)) {
  if (!schedule_) throw std::invalid_argument("LearningRateScheduler: empty schedule");
}

void LearningRateScheduler::on_train_run_begin(Trainer& t) {
  if (t.optimizer().has_schedule()) {
    throw std::invalid_argument("LearningRateScheduler: optimizer " + t.optimizer().name() +
                                " takes its learning rate from a LearningRateSchedule, which this callback would "
                                "overwrite; give the optimizer a float learning_rate, or drop the callback and let "
                                "the schedule run (as in Keras, the two do not combine)");
  }
}

void LearningRateScheduler::on_train_epoch_begin(Trainer& t) {
  float lr = schedule_(t.epoch(), t.optimizer().learning_rate());
  if (!(lr >= 0) || !std::isfinite(lr)) {
    throw std::invalid_argument("LearningRateScheduler: schedule returned " + std::to_string(lr) + " for epoch " +
                                std::to_string(t.epoch()));
  }
  t.optimizer().set_learning_rate(lr);
}

void TerminateOnNaN::on_train_step_end(Trainer& t, const BatchOutput& out) {
  float loss = out.loss.item();
  if (!std::isfinite(loss)) {
    std::fprintf(stderr, "Batch %lld: invalid loss %f, terminating training\n", static_cast<long long>(t.step_in_epoch()), loss);
    terminated_ = true;
    t.stop_training = true;
  }
}

}  // namespace kiln::nn
