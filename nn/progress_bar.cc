#include "nn/progress_bar.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <sstream>

namespace kiln::nn {
namespace {
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
std::string duration(double s) {
  std::ostringstream os;
  if (s >= 3600) os << static_cast<int>(s / 3600) << ":" << (static_cast<int>(s) % 3600) / 60 << ":" << static_cast<int>(s) % 60;
  else if (s >= 60) os << static_cast<int>(s / 60) << ":" << (static_cast<int>(s) % 60 < 10 ? "0" : "") << static_cast<int>(s) % 60;
  else os << static_cast<int>(s + 0.5) << "s";
  return os.str();
}
}  // namespace

ProgressBar::ProgressBar() : tty_(isatty(STDOUT_FILENO)) {}

std::string ProgressBar::format_logs(const Logs& logs) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(4);
  // Keras order: loss first, then metrics, then their val_ versions.
  auto emit = [&](bool val) {
    auto loss = logs.find(val ? "val_loss" : "loss");
    if (loss != logs.end()) os << " - " << loss->first << ": " << loss->second;
    for (auto& [k, v] : logs) {
      bool is_val = k.rfind("val_", 0) == 0;
      if (is_val != val || k == "loss" || k == "val_loss" || k == "lr") continue;
      os << " - " << k << ": " << v;
    }
  };
  emit(false);
  emit(true);
  return os.str();
}

std::string ProgressBar::bar(int64_t done, int64_t total, int width) {
  std::string s = "[";
  int filled = total > 0 ? static_cast<int>(width * done / total) : width;
  for (int i = 0; i < width; ++i) s += i < filled ? '=' : (i == filled && done < total ? '>' : '.');
  return s + "]";
}

void ProgressBar::on_train_epoch_begin(Trainer& t) {
  epoch_start_ = last_draw_ = std::chrono::steady_clock::now();
  if (interactive(t)) std::cout << "Epoch " << t.epoch() + 1 << "/" << t.num_epochs() << std::endl;
}

void ProgressBar::on_train_step_end(Trainer& t, const BatchOutput&) {
  if (!interactive(t)) return;
  int64_t done = t.step_in_epoch() + 1, total = t.steps_per_epoch();
  if (seconds_since(last_draw_) < 0.1 && done < total) return;
  last_draw_ = std::chrono::steady_clock::now();
  double elapsed = seconds_since(epoch_start_);
  double eta = done > 0 ? elapsed / done * (total - done) : 0;
  std::string width = std::to_string(total);
  std::printf("\r%*lld/%lld %s - ETA: %s%s\033[K", static_cast<int>(width.size()), static_cast<long long>(done),
              static_cast<long long>(total), bar(done, total).c_str(), duration(eta).c_str(),
              format_logs(t.running_metrics()).c_str());
  std::fflush(stdout);
}

void ProgressBar::on_eval_epoch_begin(Trainer&) {
  if (!training_) epoch_start_ = std::chrono::steady_clock::now();
}

void ProgressBar::on_eval_epoch_end(Trainer& t) {
  if (training_ || t.verbose() == 0) return;  // during fit the epoch line carries val_ metrics
  double elapsed = seconds_since(epoch_start_);
  std::printf("%lld/%lld - %s%s\n", static_cast<long long>(t.eval_steps()), static_cast<long long>(t.eval_steps()),
              duration(elapsed).c_str(), format_logs(t.logs()).c_str());
  std::fflush(stdout);
}

void ProgressBar::on_epoch_end(Trainer& t, int64_t epoch, Logs& logs) {
  double elapsed = seconds_since(epoch_start_);
  int64_t steps = std::max<int64_t>(t.step_in_epoch(), 1);
  char per_step[32];
  double step_s = elapsed / steps;
  if (step_s >= 1e-3) {
    std::snprintf(per_step, sizeof per_step, "%.0fms/step", 1e3 * step_s);
  } else {
    std::snprintf(per_step, sizeof per_step, "%.0fus/step", 1e6 * step_s);
  }
  if (interactive(t)) {
    std::printf("\r%lld/%lld %s - %s %s%s\033[K\n", static_cast<long long>(t.step_in_epoch()),
                static_cast<long long>(t.steps_per_epoch()), bar(1, 1).c_str(), duration(elapsed).c_str(), per_step,
                format_logs(logs).c_str());
  } else {
    std::printf("Epoch %lld/%lld - %lld/%lld - %s - %s%s\n", static_cast<long long>(epoch + 1),
                static_cast<long long>(t.num_epochs()), static_cast<long long>(t.step_in_epoch()),
                static_cast<long long>(t.steps_per_epoch()), duration(elapsed).c_str(), per_step,
                format_logs(logs).c_str());
  }
  std::fflush(stdout);
}

}  // namespace kiln::nn
