#pragma once
#include <atomic>
#include <map>
#include <mutex>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "data/dataset.h"
#include "nn/layer.h"
#include "nn/losses.h"
#include "nn/metrics.h"
#include "nn/symbolic.h"
#include "optim/optimizer.h"

namespace kiln::nn {

class Callback;
using Logs = std::map<std::string, double>;

// Per-epoch values of every logged quantity ("loss", "accuracy", "val_loss", ...).
struct History {
  std::vector<int64_t> epochs;
  std::map<std::string, std::vector<double>> history;
};

struct FitOptions {
  int64_t epochs = 1;
  std::optional<data::Dataset> validation_data;
  std::vector<std::shared_ptr<Callback>> callbacks;
  int verbose = 1;  // 0: silent; 1: progress bar (one line per epoch when stdout is not a terminal); 2: one line per epoch
  int64_t initial_epoch = 0;
  int64_t steps_per_epoch = -1;  // -1: one pass over the dataset
  int num_processes = 1;
};

// A Keras model. Three ways to get one: Model(inputs, outputs) (functional), Sequential, or
// subclassing Model and overriding call() and layers().
class Model {
 public:
  Model(const std::vector<SymbolicTensor>& inputs, const std::vector<SymbolicTensor>& outputs,
        const std::string& name = "model");
  Model(const SymbolicTensor& input, const SymbolicTensor& output, const std::string& name = "model");
  virtual ~Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  Tensor operator()(const Tensor& x, bool training = false);
  virtual std::vector<Tensor> call(const std::vector<Tensor>& inputs, bool training);
  virtual std::vector<Layer> layers() const;
  const std::string& name() const { return name_; }

  std::vector<Variable> variables() const;
  std::vector<Variable> trainable_variables() const;
  std::vector<Variable> non_trainable_variables() const;
  int64_t count_params() const;

  // Applies a dtype policy ("float32", "mixed_bfloat16") to every layer; before building.
  void set_policy(const std::string& policy);

  // Builds every layer by running a batch of one zero example (shape without batch).
  void build(const Shape& input_shape, DType dtype = DType::f32);
  bool built() const { return built_.load(std::memory_order_acquire); }
  // Keras-style table of layers, output shapes and parameter counts.
  std::string summary() const;

  void compile(const optim::Optimizer& optimizer, const Loss& loss, const std::vector<std::string>& metrics = {});
  bool compiled() const { return optimizer_ != nullptr; }
  History fit(const data::Dataset& train, const FitOptions& options = {});
  Logs evaluate(const data::Dataset& data, int verbose = 0);
  Tensor predict(const data::Dataset& data);
  Tensor predict(const Tensor& x, int64_t batch_size = 32);

  optim::Optimizer& optimizer() const;
  const Loss& loss() const;
  const std::vector<std::string>& metric_names() const { return metric_names_; }

  // Weights only (every variable, by name).
  void save_weights(const std::string& path) const;
  void load_weights(const std::string& path);
  // Weights, optimizer state and the epoch to resume from; load returns that epoch.
  void save_checkpoint(const std::string& path, int64_t next_epoch) const;
  int64_t load_checkpoint(const std::string& path);

 protected:
  explicit Model(const std::string& name);
  void check_unique_variable_names() const;

 private:
  std::string name_;
  std::vector<SymbolicTensor> inputs_, outputs_;
  std::vector<std::shared_ptr<SymbolicTensor::Node>> order_;  // topological, inputs first
  // ReLU folding: producers that run with their ReLU fused, and the Activation nodes they absorb.
  std::set<const SymbolicTensor::Node*> runs_with_relu_, absorbed_relu_;
  // Written once (under build_mu_) then only read, so predict() threads can share the model.
  void set_built_input(const Shape& shape, DType dtype, bool overwrite);
  std::optional<std::pair<Shape, DType>> built_input_;
  std::atomic<bool> built_{false};
  std::mutex build_mu_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<Loss> loss_;
  std::vector<std::string> metric_names_;
};

class Sequential : public Model {
 public:
  explicit Sequential(const std::vector<Layer>& layers = {}, const std::string& name = "sequential");
  void add(const Layer& layer);
  std::vector<Tensor> call(const std::vector<Tensor>& inputs, bool training) override;
  std::vector<Layer> layers() const override { return layers_; }

 private:
  std::vector<Layer> layers_;
};

}  // namespace kiln::nn
