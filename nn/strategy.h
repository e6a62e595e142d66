#pragma once
// The seam between training (Model::fit, Trainer) and data parallelism (dist/). nn/ calls
// these hooks and knows nothing of MPI; dist/ implements them and registers a factory, so
// fit({.num_processes = N}) works in any program that links //dist.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autograd/gradient_tape.h"
#include "autograd/variable.h"
#include "data/dataset.h"

namespace kiln::nn {

class Model;
struct FitOptions;
struct History;

// How fit trains on several processes (FitOptions::distributed).
struct DistributedOptions {
  // Gradients are all-reduced in buckets of about this many bytes, in reverse order of use,
  // each starting as soon as backward has produced its last gradient (PyTorch DDP's 25 MB).
  int64_t bucket_bytes = int64_t(25) << 20;
  // Send gradients as bf16 (each addition in f32, rounded to bf16): half the bytes.
  bool bf16_communication = false;
  // Goyal et al. 2017: multiply the learning rate by the number of processes for the run.
  // Off by default, as in Nano.
  bool scale_learning_rate = false;
  // Allow more processes than cores when fit launches them itself.
  bool oversubscribe = false;
  // Seconds one blocking collective may take before the job ends with an error naming the
  // peers it waits for (dist/watchdog.h): MPI alone waits forever for a partitioned host. 0
  // turns the watchdog off. Generous, since ranks legitimately wait for rank 0 to write a
  // checkpoint or for the slowest rank's evaluation.
  double collective_timeout = 600;
};

// One process's part in data-parallel training. Every hook is called on every rank in the
// same order (collectives inside must match).
class TrainingStrategy {
 public:
  virtual ~TrainingStrategy() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // Before fit trains: a History when this process is not a training rank and fit must
  // return it without training (the launcher that waited for the ranks gets rank 0's), else
  // nullopt. May replace the model's state (a relaunched rank loads its parent's).
  virtual std::optional<History> launch(Model& model, const data::Dataset& train, const FitOptions& options) = 0;
  // After training on this rank: rank 0 hands the result to its launcher. A rank started by
  // fit's own launcher does not return from here (its work is done).
  virtual void finish(Model& model, const History& history) = 0;
  // Training failed on this rank with `what`: ends the whole job (no rank may wait forever).
  virtual void fail(const std::string& what) = 0;

  // Every rank gets rank 0's bytes (a callback's state that only rank 0 can read, such as a
  // backup on rank 0's disk).
  virtual void broadcast_bytes(std::string& bytes) = 0;
  // Every rank gets rank 0's values.
  virtual void broadcast_variables(const std::vector<Variable>& vars) = 0;
  // Every rank gets the mean of the ranks' values (BatchNorm's moving statistics).
  virtual void average_variables(const std::vector<Variable>& vars) = 0;
  // This rank's share of every global batch.
  virtual data::Dataset shard(const data::Dataset& batched) = 0;
  // Before tape.gradient(loss, vars): starts communicating each gradient bucket as backward
  // produces it. local_examples weights this rank's gradients (its share of the batch).
  virtual void before_backward(GradientTape& tape, const std::vector<Variable>& vars, int64_t local_examples) = 0;
  // After it: the example-weighted mean of every rank's gradients, once all are in.
  virtual std::vector<Tensor> reduce_gradients(const std::vector<Tensor>& local) = 0;
  // Sums each value over the ranks (metric totals and counts).
  virtual void sum(std::vector<double>& values) = 0;
  // True on every rank when flag is true on any (stop_training).
  virtual bool any(bool flag) = 0;
  // The progress verbosity to train with, given fit's: a launcher's rank may see a terminal
  // (mpirun gives it one) where the user's output is a file, and then prints per epoch.
  virtual int progress_verbosity(int verbose) const { return verbose; }
};

// Makes the strategy for fit(num_processes), or nullptr for plain single-process training.
using StrategyFactory = std::function<std::shared_ptr<TrainingStrategy>(int num_processes, const DistributedOptions&)>;
// dist/ registers its factory when linked in.
void register_strategy_factory(StrategyFactory factory);
// The strategy fit uses: nullptr when no factory is registered and num_processes is 1;
// throws std::invalid_argument naming //dist when num_processes != 1 and none is.
std::shared_ptr<TrainingStrategy> make_strategy(int num_processes, const DistributedOptions& options);

}  // namespace kiln::nn
