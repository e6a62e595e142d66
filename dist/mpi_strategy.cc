#include "dist/mpi_strategy.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "base/files.h"
#include "dist/collectives.h"
#include "dist/error.h"
#include "dist/relaunch.h"
#include "dist/shard.h"
#include "dist/watchdog.h"
#include "dist/world.h"
#include "nn/history_text.h"

namespace kiln::dist {
namespace {

// Builds a lazily built model from the dataset's first example, so its state can be saved.
void ensure_built(nn::Model& model, const data::Dataset& train) {
  if (!model.variables().empty()) return;
  data::BatchIterator it = train.begin_iteration();
  std::optional<data::Batch> b = it.next();
  if (!b) throw std::invalid_argument("fit: the dataset is empty (it yields no batches)");
  Shape s = b->x.shape();
  if (train.batched()) s.erase(s.begin());
  model.build(s, b->x.dtype());
}

}  // namespace

MpiStrategy::MpiStrategy(Part part, int num_processes, nn::DistributedOptions options, int call)
    : part_(part),
      num_processes_(num_processes),
      options_(options),
      call_(call),
      reducer_({.bucket_bytes = options.bucket_bytes, .bf16_communication = options.bf16_communication}) {
  if (part_ == Part::worker) {
    set_collective_timeout(options.collective_timeout);
    init();
    rank_ = dist::rank();
    world_ = dist::world_size();
  }
}

std::optional<nn::History> MpiStrategy::launch(nn::Model& model, const data::Dataset& train,
                                               const nn::FitOptions& options) {
  const std::string what = "fit(num_processes=" + std::to_string(num_processes_) + ")";
  if (part_ == Part::skip) return nn::History{};
  if (part_ == Part::launcher) {
    ensure_built(model, train);
    std::string dir = make_job_dir();
    try {
      model.save_checkpoint(dir + "/start.ckpt", options.initial_epoch);
      run_ranks(what, num_processes_, options_.oversubscribe, dir, call_);
      model.load_checkpoint(dir + "/result.ckpt");
      nn::History h = nn::history_from_text(base::read_file(dir + "/history.txt"), dir + "/history.txt");
      remove_job_dir(dir);
      return h;
    } catch (...) {
      remove_job_dir(dir);
      throw;
    }
  }
  // A worker.
  model_ = &model;
  std::optional<RelaunchedJob> job = relaunched_job();
  if (job && call_ > 0) {
    if (rank_ == 0 && options.verbose > 0) unmute_stdout();
    try {
      ensure_built(model, train);
      model.load_checkpoint(job->dir + "/start.ckpt");
    } catch (const std::exception& e) {
      fail(std::string("cannot take the launcher's model state: ") + e.what());
      throw;
    }
  }
  if (options_.scale_learning_rate && world_ > 1) {
    optim::Optimizer& opt = model.optimizer();
    if (opt.has_schedule()) {
      throw std::invalid_argument(what + ": scale_learning_rate needs a constant learning rate; the optimizer has a "
                                         "schedule (scale its values instead)");
    }
    unscaled_lr_ = opt.learning_rate();
    opt.set_learning_rate(unscaled_lr_ * world_);  // Goyal et al. 2017: linear scaling
    scaled_ = true;
  }
  return std::nullopt;
}

void MpiStrategy::finish(nn::Model& model, const nn::History& history) {
  if (scaled_) {
    model.optimizer().set_learning_rate(unscaled_lr_);
    scaled_ = false;
  }
  std::optional<RelaunchedJob> job = relaunched_job();
  if (!job || call_ == 0) return;  // under the user's mpirun or inside dist::launch: fit returns
  if (rank_ == 0) {
    int64_t next_epoch = history.epochs.empty() ? 0 : history.epochs.back() + 1;
    model.save_checkpoint(job->dir + "/result.ckpt", next_epoch);
    base::write_file_atomically(job->dir + "/history.txt", nn::history_to_text(history));
  }
  end_rank();
}

void MpiStrategy::fail(const std::string& what) {
  if (part_ != Part::worker) return;
  // One rank alone cannot leave: the others would wait in their next collective forever.
  if (world_ > 1 || relaunched_job()) abort_job(what);
}

void MpiStrategy::broadcast_bytes(std::string& bytes) {
  if (world_ == 1) return;
  std::vector<int64_t> sizes = allgather(int64_t(bytes.size()));
  bytes.resize(sizes[0]);
  if (bytes.empty()) return;
  Tensor buffer = Tensor::from_bytes(bytes.data(), {int64_t(bytes.size())}, DType::u8);
  broadcast(buffer, 0);
  bytes.assign(static_cast<const char*>(buffer.raw_data()), buffer.nbytes());
}

void MpiStrategy::broadcast_variables(const std::vector<Variable>& vars) {
  if (world_ == 1) return;
  for (const Variable& v : vars) broadcast(v.value(), 0);
  // The optimizer's state too, so every rank steps identically from here on (rank 0 may
  // have loaded a checkpoint).
  if (!model_) return;
  optim::Optimizer& opt = model_->optimizer();
  auto slots = opt.slot_state(model_->trainable_variables());
  std::vector<int64_t> counts = allgather(int64_t(slots.size()));
  for (int64_t c : counts) {
    if (c != counts[0]) {
      throw std::runtime_error("dist: the ranks' optimizers hold different numbers of slots (" +
                               std::to_string(counts[0]) + " on rank 0, " + std::to_string(c) +
                               " on another); load checkpoints on every rank or on none");
    }
  }
  for (auto& [name, t] : slots) broadcast(t, 0);
  opt.set_iterations(allgather(opt.iterations())[0]);
}

void MpiStrategy::average_variables(const std::vector<Variable>& vars) {
  if (world_ == 1) return;
  for (const Variable& v : vars) {
    if (v.dtype() == DType::f32 || v.dtype() == DType::bf16) allreduce(v.value(), ReduceOp::mean);
  }
}

data::Dataset MpiStrategy::shard(const data::Dataset& batched) { return dist::shard(batched, rank_, world_); }

void MpiStrategy::before_backward(GradientTape& tape, const std::vector<Variable>& vars, int64_t local_examples) {
  reducer_.begin(vars, static_cast<double>(local_examples), &tape);
}

std::vector<Tensor> MpiStrategy::reduce_gradients(const std::vector<Tensor>& local) { return reducer_.finish(local); }

void MpiStrategy::sum(std::vector<double>& values) {
  if (world_ == 1 || values.empty()) return;
  CollectiveWatch watch("MPI_Allreduce");
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM,
                          MPI_COMM_WORLD),
            "MPI_Allreduce");
}

bool MpiStrategy::any(bool flag) {
  if (world_ == 1) return flag;
  int v = flag ? 1 : 0;
  CollectiveWatch watch("MPI_Allreduce");
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  return v != 0;
}

int MpiStrategy::progress_verbosity(int verbose) const {
  const char* tty = std::getenv("KILN_DIST_STDOUT_TTY");  // the launcher's stdout
  return verbose == 1 && call_ > 0 && tty && std::string(tty) == "0" ? 2 : verbose;
}

std::shared_ptr<nn::TrainingStrategy> make_fit_strategy(int n, const nn::DistributedOptions& options) {
  if (n < 1) throw std::invalid_argument("fit: num_processes must be at least 1, got " + std::to_string(n));
  using Part = MpiStrategy::Part;
  if (relaunched_job()) {
    // A rank started by a launch call: fits without num_processes run as in the launcher.
    if (n == 1) return nullptr;
    int call = next_launch_call();
    Part part = launch_role(call) == LaunchRole::worker ? Part::worker : Part::skip;
    return std::make_shared<MpiStrategy>(part, n, options, call);
  }
  // Under the user's own mpirun the given world is used as it is.
  if (under_launcher()) {
    return world_size() > 1 || n > 1 ? std::make_shared<MpiStrategy>(Part::worker, n, options, 0) : nullptr;
  }
  if (n == 1) return nullptr;
  return std::make_shared<MpiStrategy>(Part::launcher, n, options, next_launch_call());
}

std::shared_ptr<nn::TrainingStrategy> world_strategy(const nn::DistributedOptions& options) {
  return std::make_shared<MpiStrategy>(MpiStrategy::Part::worker, world_size(), options, 0);
}

namespace {
// Linking //dist makes fit(num_processes) work; nn/ never includes MPI.
struct Register {
  Register() { nn::register_strategy_factory(make_fit_strategy); }
} register_fit_strategy;
}  // namespace

}  // namespace kiln::dist
