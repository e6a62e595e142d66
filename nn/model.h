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
#include "nn/checkpoint.h"
#include "nn/config.h"
#include "nn/layer.h"
#include "nn/layer_graph.h"
#include "nn/losses.h"
#include "nn/metrics.h"
#include "nn/strategy.h"
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
  // Data-parallel processes (dist/, Open MPI): fit relaunches this program under mpirun with
  // this many ranks on this host, or uses the world it already runs in under a launcher.
  int num_processes = 1;
  DistributedOptions distributed;
  // Overrides num_processes: train with this strategy (one rank of a world set up elsewhere).
  std::shared_ptr<TrainingStrategy> strategy;
};

// A Keras model. Three ways to get one: Model(inputs, outputs) (functional), Sequential, or
// subclassing Model and overriding call() and layers(). A model is also a layer: call it on
// symbolic tensors inside another model (or wrap it with as_layer()), and its layers and
// weights become part of that model, so blocks nest. Using a model as a layer needs shared
// ownership: make it with std::make_shared (or move a std::unique_ptr into a shared_ptr).
class Model : public std::enable_shared_from_this<Model> {
 public:
  // An empty name gives "model", "model_1", ... as Keras does.
  Model(const std::vector<SymbolicTensor>& inputs, const std::vector<SymbolicTensor>& outputs,
        const std::string& name = "");
  Model(const SymbolicTensor& input, const SymbolicTensor& output, const std::string& name = "");
  virtual ~Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  Tensor operator()(const Tensor& x, bool training = false);
  virtual std::vector<Tensor> call(const std::vector<Tensor>& inputs, bool training);
  // call() with masks in and out (nn/mask.h): a functional model or a Sequential runs its
  // layers' mask protocol; a subclassed model, by default, runs call() and gives no masks.
  virtual std::vector<MaskedTensor> call_masked(const std::vector<MaskedTensor>& inputs, bool training);
  virtual std::vector<Layer> layers() const;
  const std::string& name() const { return name_; }

  // The model as a layer of another model (one handle per model, so a block called twice
  // shares its weights), and calling it on symbolic tensors, which does the same.
  Layer as_layer();
  SymbolicTensor operator()(const SymbolicTensor& x);
  SymbolicTensor operator()(const std::vector<SymbolicTensor>& xs);

  // The layer graph: a functional model's own, a built Sequential's chain. Throws
  // std::logic_error for a Sequential that does not know its input shape yet and for a
  // subclassed model (its call() is C++ code, not a graph).
  virtual const LayerGraph& graph() const;
  bool is_functional() const { return !graph_.nodes.empty(); }
  // How call() runs the graph: the fold_relu pass over it (functional models).
  const FusedPlan& plan() const { return plan_; }

  // Keras get_config(): "Functional" with the layer graph (layers, inbound nodes, inputs and
  // outputs), "Sequential" with its layers. A subclassed model returns "" unless it overrides
  // class_name() with a name registered by register_model() (nn/model_config.h); its config()
  // then holds what that factory takes (by default its name).
  virtual std::string class_name() const;
  virtual Config config() const;

  std::vector<Variable> variables() const;
  std::vector<Variable> trainable_variables() const;
  std::vector<Variable> non_trainable_variables() const;
  int64_t count_params() const;

  // Applies a dtype policy ("float32", "mixed_bfloat16") to every layer; before building.
  void set_policy(const std::string& policy);

  // Builds every layer by running a batch of one zero example (shape without batch).
  void build(const Shape& input_shape, DType dtype = DType::f32);
  bool built() const { return built_.load(std::memory_order_acquire); }
  // The first input's shape (without batch) and dtype, once known.
  std::optional<std::pair<Shape, DType>> built_input() const;
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
  // The entries a checkpoint holds, and loading them back (all or nothing; entries under
  // "meta/" that it does not know are ignored, so callers may add their own); `source` names
  // them in errors.
  NamedTensors training_state(int64_t next_epoch) const;
  int64_t load_training_state(const NamedTensors& entries, const std::string& source);

 protected:
  explicit Model(const std::string& name);
  void check_unique_variable_names() const;
  // Records the input shape from a batch the first time the model runs (a nested model runs
  // through its layer handle, not operator()).
  void note_input(const Tensor& x);
  friend class ModelLayer;

 private:
  std::string name_;
  LayerGraph graph_;  // empty unless functional
  FusedPlan plan_;
  // Written once (under build_mu_) then only read, so predict() threads can share the model.
  void set_built_input(const Shape& shape, DType dtype, bool overwrite);
  // predict() with the result sized for expected_rows (0: unknown) up front.
  Tensor predict_rows(const data::Dataset& data, int64_t expected_rows);
  std::optional<std::pair<Shape, DType>> built_input_;
  std::atomic<bool> built_{false};
  mutable std::mutex build_mu_;
  std::mutex layer_mu_;
  std::weak_ptr<LayerImpl> as_layer_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<Loss> loss_;
  std::vector<std::string> metric_names_;
};

class Sequential : public Model {
 public:
  // An empty name gives "sequential", "sequential_1", ...
  explicit Sequential(const std::vector<Layer>& layers = {}, const std::string& name = "");
  void add(const Layer& layer);
  std::vector<Tensor> call(const std::vector<Tensor>& inputs, bool training) override;
  std::vector<MaskedTensor> call_masked(const std::vector<MaskedTensor>& inputs, bool training) override;
  std::vector<Layer> layers() const override { return layers_; }
  // A chain: the input, then one node per layer. Made on first use once the input shape is
  // known (it runs a batch of one zero example to find each layer's output shape); add()
  // discards it, so a reference taken before add() must not be used after.
  const LayerGraph& graph() const override;
  std::string class_name() const override { return "Sequential"; }
  Config config() const override;

 private:
  std::vector<Layer> layers_;
  mutable std::mutex chain_mu_;
  mutable std::shared_ptr<const LayerGraph> chain_;
};

}  // namespace kiln::nn
