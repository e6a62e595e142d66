// The training programs of tests/multihost_test (two emulated hosts) and
// tests/backup_and_restore_test (one process). Each runs a small MLP with Adam on Gaussian
// blobs; RESULT receives the final training state (weights, optimizer state, iterations) and
// the History, as one Kiln checkpoint written by rank 0.
//   multihost_worker fit N RESULT [EPOCHS]     fit(num_processes = N): N = 1 is one process,
//                                              N = 2 runs under the caller's mpirun
//   multihost_worker loop RESULT               a custom loop with DistributedGradientTape
//   multihost_worker kill STAMP                fit(2) in which rank 1 writes the time to
//                                              STAMP and kills itself (SIGKILL) mid-epoch 1
//   multihost_worker partition STAMP TIMEOUT   fit(2) with collective_timeout = TIMEOUT
//                                              seconds (0: no watchdog) that trains until
//                                              stopped; rank 0 writes STAMP once training runs
//   multihost_worker resume N DIR RESULT [K]   fit(N) with BackupAndRestore(DIR), 4 epochs;
//                                              with K, the last rank kills itself (SIGKILL)
//                                              at step 3 of epoch K
#include <signal.h>
#include <time.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "base/files.h"
#include "dist/dist.h"
#include "kiln.h"
#include "nn/history_text.h"
#include "tests/blobs.h"

namespace {
using namespace kiln;
using namespace kiln::nn;

long long realtime_ns() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

// At step `step` of epoch `epoch`, on rank `rank`: writes the time to `stamp` (when given)
// and, when `kill`, ends this process with SIGKILL.
class At : public Callback {
 public:
  At(int rank, int64_t epoch, int64_t step, std::string stamp, bool kill)
      : rank_(rank), epoch_(epoch), step_(step), stamp_(std::move(stamp)), kill_(kill) {}
  void on_train_step_end(Trainer& t, const BatchOutput&) override {
    if (dist::rank() != rank_ || t.epoch() != epoch_ || t.step_in_epoch() != step_) return;
    if (!stamp_.empty()) base::write_file_atomically(stamp_, std::to_string(realtime_ns()));
    if (kill_) raise(SIGKILL);
  }

 private:
  int rank_;
  int64_t epoch_, step_;
  std::string stamp_;
  bool kill_;
};

std::unique_ptr<Sequential> make_model() {
  set_global_seed(3);
  auto model = std::make_unique<Sequential>(std::vector<Layer>{Dense(16, "relu", {}, "m_d1"), Dense(3, "", {}, "m_d2")},
                                            "multihost");
  model->build({2});
  model->compile(optim::Adam(0.01f), SparseCategoricalCrossentropy(true), {"accuracy"});
  return model;
}

data::Dataset train_data() { return kiln::testing::blobs(512, 1).batch(32); }

void write_result(const Model& model, const History& h, const std::string& path) {
  if (dist::rank() != 0) return;
  NamedTensors entries = model.training_state(h.epochs.empty() ? 0 : h.epochs.back() + 1);
  std::string text = history_to_text(h);
  entries.emplace_back("meta/history", Tensor::from_bytes(text.data(), {int64_t(text.size())}, DType::u8));
  base::write_file_atomically(path, serialize_checkpoint(entries));
}

// The custom loop of docs/distributed.md: every rank starts from rank 0's weights, takes its
// share of each global batch and averages gradients with the tape.
void custom_loop(const std::string& result) {
  auto model = make_model();
  optim::Adam optimizer(0.01f);
  SparseCategoricalCrossentropy loss_fn(true);
  History h;
  for (const Variable& v : model->variables()) dist::broadcast(v.value());
  data::Dataset mine = dist::shard(train_data());
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    mine.set_epoch(epoch);
    data::BatchIterator it = mine.begin_iteration();
    double sum = 0, count = 0;
    while (auto batch = it.next()) {
      dist::DistributedGradientTape tape;
      Tensor loss = loss_fn(batch->y, (*model)(batch->x, true));
      const double n = static_cast<double>(batch->x.shape()[0]);
      auto grads = tape.gradient(loss, model->trainable_variables(), n);
      optimizer.apply_gradients(grads, model->trainable_variables());
      sum += loss.item() * n;
      count += n;
    }
    std::vector<double> totals = dist::allgather(sum), counts = dist::allgather(count);
    double s = 0, c = 0;
    for (size_t r = 0; r < totals.size(); ++r) s += totals[r], c += counts[r];
    h.epochs.push_back(epoch);
    h.history["loss"].push_back(s / c);
  }
  if (dist::rank() != 0) return;
  NamedTensors entries;
  for (const Variable& v : model->variables()) entries.emplace_back(v.name(), v.value());
  std::string text = history_to_text(h);
  entries.emplace_back("meta/history", Tensor::from_bytes(text.data(), {int64_t(text.size())}, DType::u8));
  base::write_file_atomically(result, serialize_checkpoint(entries));
}

int run(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  auto arg = [&](int i) -> std::string {
    if (i >= argc) throw std::invalid_argument("multihost_worker " + mode + ": missing argument " + std::to_string(i));
    return argv[i];
  };
  if (mode == "fit") {
    auto model = make_model();
    FitOptions o{.epochs = argc > 4 ? std::stoi(arg(4)) : 3, .verbose = 0, .num_processes = std::stoi(arg(2))};
    History h = model->fit(train_data(), o);
    write_result(*model, h, arg(3));
  } else if (mode == "loop") {
    custom_loop(arg(2));
  } else if (mode == "kill") {
    auto model = make_model();
    FitOptions o{.epochs = 3, .verbose = 0, .num_processes = 2};
    o.callbacks = {std::make_shared<At>(1, 1, 3, arg(2), true)};
    model->fit(train_data(), o);
  } else if (mode == "partition") {
    auto model = make_model();
    FitOptions o{.epochs = 1000000, .verbose = 0, .num_processes = 2};
    o.distributed.collective_timeout = std::stod(arg(3));
    o.callbacks = {std::make_shared<At>(0, 0, 3, arg(2), false)};
    model->fit(train_data(), o);
  } else if (mode == "resume") {
    auto model = make_model();
    const int n = std::stoi(arg(2));
    FitOptions o{.epochs = 4, .verbose = 0, .num_processes = n};
    o.callbacks = {std::make_shared<BackupAndRestore>(arg(3))};
    if (argc > 5) o.callbacks.push_back(std::make_shared<At>(n - 1, std::stoi(arg(5)), 3, "", true));
    History h = model->fit(train_data(), o);
    write_result(*model, h, arg(4));
  } else {
    throw std::invalid_argument("multihost_worker: unknown mode '" + mode + "' (see the file's first comment)");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "multihost_worker: %s\n", e.what());
    return 1;
  }
}
