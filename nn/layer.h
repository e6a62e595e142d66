#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "nn/config.h"
#include "nn/mask.h"
#include "nn/policy.h"
#include "tensor/tensor.h"

namespace kiln::nn {

class SymbolicTensor;

// The behaviour of a layer. Subclass it for custom layers: create weights in build() with
// add_weight(), compute in call(). build() runs once, on the first call, with the input shapes
// (batch dimension included), as in Keras. To save a model holding a custom layer, override
// class_name() and config() and register a factory (nn/layer_registry.h).
class LayerImpl {
 public:
  LayerImpl(const std::string& type_name, const std::string& name);
  virtual ~LayerImpl() = default;

  virtual void build(const std::vector<Shape>& input_shapes) {}
  virtual Tensor call(const std::vector<Tensor>& inputs, bool training) = 0;
  // Layers whose inputs should keep their dtype (Rescaling takes u8 images) override this.
  virtual bool autocast_inputs() const { return true; }
  // Number of inputs the layer takes; -1 for any (Add).
  virtual int num_inputs() const { return 1; }

  // Masks (nn/mask.h), as Keras's call(inputs, mask=...), supports_masking and compute_mask.
  // masks holds one entry per input (undefined where that input has none); these are called
  // only when some input has a mask. Layers that read masks (pooling, attention, RNNs)
  // override call_with_mask; the default ignores them.
  virtual Tensor call_with_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& masks, bool training) {
    return call(inputs, training);
  }
  // Keras's supports_masking: the layer passes its first input's mask on (Dense, Dropout,
  // LayerNormalization, activations). A layer that neither supports masking nor makes a mask
  // drops the masks it gets, as Keras does.
  virtual bool supports_masking() const { return false; }
  // Keras's compute_mask(inputs, previous_mask): the output's mask, or an undefined Tensor.
  // Called on every call, masks empty or all undefined when no input has one, so that layers
  // that make masks (Embedding(mask_zero), Masking) can. The default: the first input's mask
  // when supports_masking(), else none.
  virtual Tensor compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& masks) const;
  // The output and its mask at once: call_with_mask (or call when no mask came) and
  // compute_mask. Override it only where one computation gives both (a nested model).
  virtual MaskedTensor call_and_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& masks,
                                     bool training, bool with_relu);

  // Layers with several outputs (Keras's LSTM(return_state=True): [output, state_h, state_c];
  // Bidirectional(merge_mode=None)) say how many and give them all, with their masks, from
  // call_outputs(); call() and the single-output paths (invoke, operator()) refuse them.
  virtual int num_outputs() const { return 1; }
  virtual std::vector<MaskedTensor> call_outputs(const std::vector<Tensor>& inputs, const std::vector<Tensor>& masks,
                                                 bool training);

  // relu(call(inputs)), computed in one oneDNN primitive by layers that say fuses_relu()
  // (BatchNormalization, Add, and Conv2D without an activation or with a ReLU one).
  // The fold_relu pass (nn/passes/fold_relu.h) decides when a model uses it.
  virtual Tensor call_with_relu(const std::vector<Tensor>& inputs, bool training);
  virtual bool fuses_relu() const { return false; }
  // True for Activation("relu"), which the fold_relu pass folds into its producer.
  virtual bool is_relu_activation() const { return false; }

  // Keras get_config(): the class name the layer registry knows it by, and the attributes
  // from_config() needs to make an equivalent layer (not its weights). The base config holds
  // name, trainable and dtype (the policy's name); layers add theirs to it.
  virtual std::string class_name() const { return type_name_; }
  virtual Config config() const;
  // The output shape (batch dimension included) for these input shapes, without building or
  // running anything; std::nullopt when the layer cannot tell (custom layers by default).
  // A loader checks sizes with it before it lets a layer allocate.
  virtual std::optional<Shape> compute_output_shape(const std::vector<Shape>& input_shapes) const {
    return std::nullopt;
  }
  // About how many multiply-adds one call on these shapes takes (an upper bound, for a loader's
  // budget). By default the input elements, right for elementwise layers.
  virtual double compute_cost(const std::vector<Shape>& input_shapes) const;

  // Builds if needed, casts floating inputs to the compute dtype, then calls call() (or
  // call_with_relu() when the caller folded a ReLU into this layer).
  Tensor invoke(const std::vector<Tensor>& inputs, bool training, bool with_relu = false);
  // invoke() with masks: builds and casts as invoke(), then call_and_mask(). masks is empty
  // or one per input.
  MaskedTensor invoke_masked(const std::vector<Tensor>& inputs, const std::vector<Tensor>& masks, bool training,
                             bool with_relu = false);
  // Every output (one for most layers): builds and casts as invoke(), then call_outputs().
  std::vector<MaskedTensor> invoke_outputs(const std::vector<Tensor>& inputs, const std::vector<Tensor>& masks,
                                           bool training);

  const std::string& name() const { return name_; }
  const std::string& type_name() const { return type_name_; }
  bool built() const { return built_; }
  const Policy& policy() const { return policy_; }
  // Changes the policy; only before the layer is built.
  virtual void set_policy(const Policy& policy);

  // kiln::optimize's hook: keep this layer's weights in the blocked layout its oneDNN kernels
  // train fastest on (true), or in the Keras layout (false). get_weights, checkpoints and
  // export still see the Keras layout. A layer not built yet applies it when it builds.
  // Returns how many variables are packed afterwards.
  virtual int set_packed_weights(bool packed) { return 0; }

  // Virtual so that a layer holding other layers (a Model used as a layer) reports theirs.
  virtual std::vector<Variable> variables() const { return variables_; }
  virtual std::vector<Variable> trainable_variables() const;
  virtual std::vector<Variable> non_trainable_variables() const;
  int64_t count_params() const;
  bool trainable = true;

 protected:
  // Creates a weight named "<layer>/<name>" in the policy's variable dtype.
  Variable add_weight(const std::string& name, const Shape& shape, const std::string& initializer,
                      bool trainable = true);
  // A variable's value in the compute dtype (a recorded cast under mixed precision).
  Tensor compute_value(const Variable& v) const;
  // Checks the input count and ranks before build; throws naming the layer and shapes.
  void expect_rank(const Tensor& x, int min_rank, int max_rank = -1) const;

 private:
  std::string type_name_, name_;
  Policy policy_;
  std::atomic<bool> built_{false};
  std::mutex build_mu_;
  std::vector<Variable> variables_;
  // Casts floating inputs to the compute dtype (into `storage` when any needs it) and builds
  // on the first call; returns the inputs to call with.
  const std::vector<Tensor>& prepare(const std::vector<Tensor>& inputs, std::vector<Tensor>& storage);
  void check_masks(const std::vector<Tensor>& inputs, const std::vector<Tensor>& masks) const;
  void expect_one_output() const;
};

// A cheap handle to a layer: copies refer to the same layer and weights. Calling it on tensors
// runs the layer; calling it on symbolic tensors (from Input) builds a functional graph.
class Layer {
 public:
  Layer() = default;
  Layer(std::shared_ptr<LayerImpl> impl);  // NOLINT: implicit, so custom layers convert

  Tensor operator()(const Tensor& x, bool training = false) const;
  Tensor operator()(const std::vector<Tensor>& xs, bool training = false) const;
  // Eager calls with masks (Keras attaches them to the tensors; Kiln hands them beside):
  // returns the output and the mask the layer gives it.
  // (Named, not operator(): layer({a, b}) must stay a call on two tensors.)
  MaskedTensor call_masked(const MaskedTensor& x, bool training = false) const;
  MaskedTensor call_masked(const std::vector<MaskedTensor>& xs, bool training = false) const;
  SymbolicTensor operator()(const SymbolicTensor& x) const;
  SymbolicTensor operator()(const std::vector<SymbolicTensor>& xs) const;
  // Every output of a layer with several (LSTM(return_state=true) gives {output, h, c}); for
  // a recurrent layer the inputs after the first are its initial states (Keras's
  // initial_state=[h, c]). The eager form drops the masks; call_masked_outputs keeps them.
  std::vector<Tensor> outputs(const std::vector<Tensor>& xs, bool training = false) const;
  std::vector<MaskedTensor> call_masked_outputs(const std::vector<MaskedTensor>& xs, bool training = false) const;
  std::vector<SymbolicTensor> outputs(const std::vector<SymbolicTensor>& xs) const;

  // Sets this layer's dtype policy ("float32", "mixed_bfloat16") before it is built; chainable:
  // Dense(10).with_policy("float32") keeps a classifier head in f32 under mixed precision.
  Layer with_policy(const std::string& policy) const;

  LayerImpl* operator->() const { return &impl(); }
  LayerImpl& impl() const;
  const std::shared_ptr<LayerImpl>& ptr() const { return impl_; }
  bool defined() const { return impl_ != nullptr; }

 private:
  std::shared_ptr<LayerImpl> impl_;
};

// "dense", "dense_1", ...: unique per type within the process, as Keras names layers.
std::string unique_layer_name(const std::string& base);

// Limits for building a model from a file, in force on this thread while one is alive. The
// weights a file holds bound the weights its layers may create (add_weight() refuses more,
// before allocating, and creates zeros: the loader overwrites them and global seeds stay
// untouched); max_activation_bytes bounds each tensor a symbolic call probes with,
// total_activation_bytes all of them together (every layer's probe inputs and output, so
// that many layers under the per-tensor limit cannot add up to gigabytes), and
// max_multiply_adds the work of all probes together (a small file can describe a pooling
// window or a kernel that would take hours).
struct BuildLimits {
  uint64_t weight_bytes = 0;
  uint64_t max_activation_bytes = 0;
  double max_multiply_adds = 0;
  uint64_t total_activation_bytes = UINT64_MAX;
};
class ScopedBuildLimits {
 public:
  ScopedBuildLimits(const BuildLimits& limits, std::string source);
  ~ScopedBuildLimits();
  ScopedBuildLimits(const ScopedBuildLimits&) = delete;
  ScopedBuildLimits& operator=(const ScopedBuildLimits&) = delete;

  // The limits in force on this thread, or nullptr.
  static ScopedBuildLimits* current();
  // Throws std::runtime_error naming the source when a tensor of this shape is over the limit.
  void check_activation(const Shape& shape, DType dtype, const std::string& layer) const;
  // check_activation, then charges the tensor to the whole build's activation budget.
  void take_activation(const Shape& shape, DType dtype, const std::string& layer);
  uint64_t activation_bytes_left() const { return activation_bytes_left_; }
  void take_weight(const Shape& shape, DType dtype, const std::string& variable);
  void take_compute(double multiply_adds, const std::string& layer);

 private:
  uint64_t weight_bytes_left_, max_activation_bytes_, activation_bytes_left_;
  double compute_left_;
  std::string source_;
  ScopedBuildLimits* previous_;
};

// The training step of the loop running on this thread (the Trainer sets it; -1 outside
// one). Stochastic layers (Dropout) derive their randomness from it, so a resumed run draws
// the same masks; outside a Trainer they count their own calls instead.
void set_training_step(int64_t step);
int64_t training_step();

// The seed of one training call's dropout draws, mixed from the layer's resolved seed and the
// training step, or `own_calls` (the layer's counter, incremented here) outside a Trainer.
uint64_t dropout_call_seed(uint64_t layer_seed, std::atomic<int64_t>& own_calls);

}  // namespace kiln::nn
