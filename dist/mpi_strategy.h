#pragma once
#include <memory>

#include "dist/gradient_reducer.h"
#include "nn/model.h"
#include "nn/strategy.h"

namespace kiln::dist {

// Data-parallel fit over MPI (nn::TrainingStrategy). One object plays one of three parts,
// chosen by make_fit_strategy:
// - launcher: fit was called with num_processes = N outside any MPI launcher. It saves the
//   model's state, runs this program under mpirun with N pinned ranks, waits, loads rank 0's
//   final state into the model and returns rank 0's History.
// - worker: a rank (started by the launcher or by the user's own mpirun). It trains its share
//   of every batch with averaged gradients; a relaunched rank starts from the launcher's
//   state and ends after fit.
// - skip: a relaunched rank's earlier launch call (not its work): returns an empty History.
class MpiStrategy : public nn::TrainingStrategy {
 public:
  enum class Part { launcher, worker, skip };
  MpiStrategy(Part part, int num_processes, nn::DistributedOptions options, int call);

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::optional<nn::History> launch(nn::Model& model, const data::Dataset& train,
                                    const nn::FitOptions& options) override;
  void finish(nn::Model& model, const nn::History& history) override;
  void fail(const std::string& what) override;
  void broadcast_bytes(std::string& bytes) override;
  void broadcast_variables(const std::vector<Variable>& vars) override;
  void average_variables(const std::vector<Variable>& vars) override;
  data::Dataset shard(const data::Dataset& batched) override;
  void before_backward(GradientTape& tape, const std::vector<Variable>& vars, int64_t local_examples) override;
  std::vector<Tensor> reduce_gradients(const std::vector<Tensor>& local) override;
  void sum(std::vector<double>& values) override;
  bool any(bool flag) override;
  int progress_verbosity(int verbose) const override;

  const GradientReducer& reducer() const { return reducer_; }

 private:
  Part part_;
  int num_processes_;
  nn::DistributedOptions options_;
  int call_;  // fit's launch call that relaunched this rank; 0: the world was set up elsewhere
  int rank_ = 0, world_ = 1;
  GradientReducer reducer_;
  nn::Model* model_ = nullptr;
  float unscaled_lr_ = 0;
  bool scaled_ = false;
};

// fit's factory (registered with nn::register_strategy_factory when //dist is linked):
// nullptr for plain single-process training.
std::shared_ptr<nn::TrainingStrategy> make_fit_strategy(int num_processes, const nn::DistributedOptions& options);

// For a loop that drives the Trainer or fit itself inside a world it set up (dist::launch,
// its own mpirun): a worker over the current world.
std::shared_ptr<nn::TrainingStrategy> world_strategy(const nn::DistributedOptions& options = {});

}  // namespace kiln::dist
