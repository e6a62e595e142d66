#include "nn/layer.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>

#include "nn/initializers.h"
#include "nn/symbolic.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/eltwise.h"
#include "tensor/random.h"

namespace kiln::nn {

std::string unique_layer_name(const std::string& base) {
  static std::mutex mu;
  static std::map<std::string, int> counts;
  std::lock_guard<std::mutex> lock(mu);
  int n = counts[base]++;
  return n == 0 ? base : base + "_" + std::to_string(n);
}

namespace {
// Per thread: two models trained on two threads each see their own step.
thread_local int64_t t_training_step = -1;
}
void set_training_step(int64_t step) { t_training_step = step; }
int64_t training_step() { return t_training_step; }

uint64_t dropout_call_seed(uint64_t layer_seed, std::atomic<int64_t>& own_calls) {
  int64_t step = t_training_step;
  if (step < 0) step = own_calls.fetch_add(1);  // a custom loop: fresh masks every call
  return layer_seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(step) * 0xbf58476d1ce4e5b9ull + 1;
}

LayerImpl::LayerImpl(const std::string& type_name, const std::string& name)
    : type_name_(type_name), name_(name.empty() ? unique_layer_name(type_name) : name), policy_(global_policy()) {}

Config LayerImpl::config() const {
  Config c = Config::map();
  c.set("name", name_);
  c.set("trainable", trainable);
  c.set("dtype", policy_.name);
  return c;
}

namespace {
thread_local ScopedBuildLimits* t_build_limits = nullptr;
}

ScopedBuildLimits::ScopedBuildLimits(const BuildLimits& limits, std::string source)
    : weight_bytes_left_(limits.weight_bytes),
      max_activation_bytes_(limits.max_activation_bytes),
      activation_bytes_left_(limits.total_activation_bytes),
      compute_left_(limits.max_multiply_adds),
      source_(std::move(source)),
      previous_(t_build_limits) {
  t_build_limits = this;
}

ScopedBuildLimits::~ScopedBuildLimits() { t_build_limits = previous_; }

ScopedBuildLimits* ScopedBuildLimits::current() { return t_build_limits; }

void ScopedBuildLimits::check_activation(const Shape& shape, DType dtype, const std::string& layer) const {
  uint64_t bytes = 0;
  try {
    bytes = checked_nbytes(shape, dtype_size(dtype), "'" + source_ + "': layer '" + layer + "' output");
  } catch (const std::exception& e) {
    throw std::runtime_error(e.what());
  }
  for (int64_t d : shape) {
    if (d == 0) {
      throw std::runtime_error("'" + source_ + "': layer '" + layer + "' would produce an empty tensor " +
                               shape_str(shape));
    }
  }
  if (bytes > max_activation_bytes_) {
    throw std::runtime_error("'" + source_ + "': layer '" + layer + "' would produce " + shape_str(shape) + " (" +
                             std::to_string(bytes) + " bytes for one example), over the loader's limit of " +
                             std::to_string(max_activation_bytes_));
  }
}

void ScopedBuildLimits::take_activation(const Shape& shape, DType dtype, const std::string& layer) {
  check_activation(shape, dtype, layer);
  const uint64_t bytes = checked_nbytes(shape, dtype_size(dtype), layer);
  if (bytes > activation_bytes_left_) {
    throw std::runtime_error("'" + source_ + "': layer '" + layer + "' would take its building probes past the " +
                             "loader's budget for all activations together (" + shape_str(shape) + " needs " +
                             std::to_string(bytes) + " bytes, " + std::to_string(activation_bytes_left_) + " are left)");
  }
  activation_bytes_left_ -= bytes;
}

void ScopedBuildLimits::take_weight(const Shape& shape, DType dtype, const std::string& variable) {
  uint64_t bytes = 0;
  try {
    bytes = checked_nbytes(shape, dtype_size(dtype), "'" + source_ + "': weight '" + variable + "'");
  } catch (const std::exception& e) {
    throw std::runtime_error(e.what());
  }
  if (bytes > weight_bytes_left_) {
    throw std::runtime_error("'" + source_ + "': weight '" + variable + "' " + shape_str(shape) + " needs " +
                             std::to_string(bytes) + " bytes, more than the file holds for the weights not yet made (" +
                             std::to_string(weight_bytes_left_) + ")");
  }
  weight_bytes_left_ -= bytes;
}

void ScopedBuildLimits::take_compute(double multiply_adds, const std::string& layer) {
  if (!(multiply_adds <= compute_left_)) {
    throw std::runtime_error("'" + source_ + "': building the model would take more work than the loader allows (" +
                             "layer '" + layer + "' needs about " + std::to_string(multiply_adds) +
                             " multiply-adds for one example, " + std::to_string(compute_left_) + " are left)");
  }
  compute_left_ -= multiply_adds;
}

double LayerImpl::compute_cost(const std::vector<Shape>& input_shapes) const {
  double n = 0;
  for (const Shape& s : input_shapes) {
    double e = 1;
    for (int64_t d : s) e *= static_cast<double>(d);
    n += e;
  }
  return n;
}

void LayerImpl::set_policy(const Policy& policy) {
  if (built_) throw std::logic_error("layer '" + name_ + "': cannot change the dtype policy after it is built");
  policy_ = policy;
}

Tensor LayerImpl::call_with_relu(const std::vector<Tensor>& inputs, bool training) {
  return relu(call(inputs, training));
}

const std::vector<Tensor>& LayerImpl::prepare(const std::vector<Tensor>& inputs_in, std::vector<Tensor>& cast_inputs) {
  if (num_inputs() >= 0 && static_cast<int>(inputs_in.size()) != num_inputs()) {
    throw std::invalid_argument("layer '" + name_ + "' (" + type_name_ + ") takes " + std::to_string(num_inputs()) +
                                " input(s), got " + std::to_string(inputs_in.size()));
  }
  // A copy only when some input is cast (cast returns an input of the compute dtype as is).
  bool any_cast = false;
  for (const Tensor& t : inputs_in) {
    if (!t.defined()) throw std::invalid_argument("layer '" + name_ + "': undefined input tensor");
    any_cast = any_cast || (is_floating(t.dtype()) && t.dtype() != policy_.compute_dtype);
  }
  any_cast = any_cast && autocast_inputs();
  if (any_cast) {
    cast_inputs = inputs_in;
    for (Tensor& t : cast_inputs) {
      if (is_floating(t.dtype())) t = cast(t, policy_.compute_dtype);
    }
  }
  const std::vector<Tensor>& inputs = any_cast ? cast_inputs : inputs_in;
  if (!built_.load(std::memory_order_acquire)) {
    // Threads sharing an unbuilt model must not create its weights twice.
    std::lock_guard<std::mutex> lock(build_mu_);
    if (!built_.load(std::memory_order_relaxed)) {
      std::vector<Shape> shapes;
      for (const Tensor& t : inputs) shapes.push_back(t.shape());
      build(shapes);
      built_.store(true, std::memory_order_release);
    }
  }
  return inputs;
}

void LayerImpl::expect_one_output() const {
  if (num_outputs() != 1) {
    throw std::invalid_argument("layer '" + name_ + "' (" + class_name() + ") has " + std::to_string(num_outputs()) +
                                " outputs: call it with Layer::outputs(), which returns them all");
  }
}

Tensor LayerImpl::invoke(const std::vector<Tensor>& inputs_in, bool training, bool with_relu) {
  expect_one_output();
  std::vector<Tensor> storage;
  const std::vector<Tensor>& inputs = prepare(inputs_in, storage);
  return with_relu ? call_with_relu(inputs, training) : call(inputs, training);
}

MaskedTensor LayerImpl::invoke_masked(const std::vector<Tensor>& inputs_in, const std::vector<Tensor>& masks,
                                      bool training, bool with_relu) {
  expect_one_output();
  check_masks(inputs_in, masks);
  std::vector<Tensor> storage;
  const std::vector<Tensor>& inputs = prepare(inputs_in, storage);
  return call_and_mask(inputs, masks, training, with_relu);
}

std::vector<MaskedTensor> LayerImpl::invoke_outputs(const std::vector<Tensor>& inputs_in,
                                                    const std::vector<Tensor>& masks, bool training) {
  check_masks(inputs_in, masks);
  std::vector<Tensor> storage;
  const std::vector<Tensor>& inputs = prepare(inputs_in, storage);
  std::vector<MaskedTensor> outs = call_outputs(inputs, masks, training);
  if (outs.size() != static_cast<size_t>(num_outputs())) {
    throw std::logic_error("layer '" + name_ + "' (" + class_name() + ") gave " + std::to_string(outs.size()) +
                           " outputs, its num_outputs() says " + std::to_string(num_outputs()));
  }
  return outs;
}

std::vector<MaskedTensor> LayerImpl::call_outputs(const std::vector<Tensor>& inputs, const std::vector<Tensor>& masks,
                                                  bool training) {
  return {call_and_mask(inputs, masks, training, false)};
}

void LayerImpl::check_masks(const std::vector<Tensor>& inputs_in, const std::vector<Tensor>& masks) const {
  if (!masks.empty() && masks.size() != inputs_in.size()) {
    throw std::invalid_argument("layer '" + name_ + "': " + std::to_string(masks.size()) + " masks for " +
                                std::to_string(inputs_in.size()) + " inputs");
  }
  for (size_t i = 0; i < masks.size(); ++i) {
    if (!masks[i].defined()) continue;
    const Shape& v = inputs_in[i].shape();
    const Shape& m = masks[i].shape();
    if (masks[i].dtype() != DType::f32 || v.empty() || m.size() != v.size() - 1 ||
        !std::equal(m.begin(), m.end(), v.begin())) {
      throw std::invalid_argument("layer '" + name_ + "': input " + std::to_string(i) + " " + inputs_in[i].describe() +
                                  " has the mask " + masks[i].describe() +
                                  "; a mask is f32 and shaped as its value without the last axis");
    }
  }
}

MaskedTensor LayerImpl::call_and_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& masks,
                                      bool training, bool with_relu) {
  MaskedTensor out;
  if (any_mask(masks)) {
    out.value = call_with_mask(inputs, masks, training);
    if (with_relu) out.value = relu(out.value);
  } else {
    out.value = with_relu ? call_with_relu(inputs, training) : call(inputs, training);
  }
  out.mask = compute_mask(inputs, masks);
  return out;
}

Tensor LayerImpl::compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& masks) const {
  if (!supports_masking() || masks.empty()) return Tensor();
  return masks[0];
}

std::vector<Variable> LayerImpl::trainable_variables() const {
  std::vector<Variable> out;
  if (!trainable) return out;
  out.reserve(variables_.size());
  for (const Variable& v : variables_) {
    if (v.trainable()) out.push_back(v);
  }
  return out;
}

std::vector<Variable> LayerImpl::non_trainable_variables() const {
  std::vector<Variable> out;
  for (const Variable& v : variables_) {
    if (!v.trainable() || !trainable) out.push_back(v);
  }
  return out;
}

int64_t LayerImpl::count_params() const {
  int64_t n = 0;
  for (const Variable& v : variables()) n += v.value().numel();
  return n;
}

Variable LayerImpl::add_weight(const std::string& name, const Shape& shape, const std::string& initializer,
                               bool trainable_weight) {
  Tensor init;
  if (ScopedBuildLimits* limits = ScopedBuildLimits::current()) {
    limits->take_weight(shape, policy_.variable_dtype, name_ + "/" + name);
    init = Tensor::zeros(shape, policy_.variable_dtype);
  } else {
    init = initialize(initializer, shape, next_global_seed());
    if (policy_.variable_dtype != DType::f32) init = cast(init, policy_.variable_dtype);
  }
  Variable v(init, name_ + "/" + name, trainable_weight);
  variables_.push_back(v);
  return v;
}

Tensor LayerImpl::compute_value(const Variable& v) const { return cast(v.value(), policy_.compute_dtype); }

void LayerImpl::expect_rank(const Tensor& x, int min_rank, int max_rank) const {
  if (x.ndim() < min_rank || (max_rank >= 0 && x.ndim() > max_rank)) {
    std::string want = max_rank == min_rank ? std::to_string(min_rank)
                       : max_rank < 0       ? ">= " + std::to_string(min_rank)
                                            : std::to_string(min_rank) + ".." + std::to_string(max_rank);
    throw std::invalid_argument("layer '" + name_ + "' (" + type_name_ + ") expects input of rank " + want +
                                ", got " + x.describe());
  }
}

Layer::Layer(std::shared_ptr<LayerImpl> impl) : impl_(std::move(impl)) {}

LayerImpl& Layer::impl() const {
  if (!impl_) throw std::logic_error("use of an empty Layer handle");
  return *impl_;
}

Layer Layer::with_policy(const std::string& policy) const {
  impl().set_policy(policy_from_name(policy));
  return *this;
}

Tensor Layer::operator()(const Tensor& x, bool training) const { return impl().invoke({x}, training); }

Tensor Layer::operator()(const std::vector<Tensor>& xs, bool training) const { return impl().invoke(xs, training); }

MaskedTensor Layer::call_masked(const MaskedTensor& x, bool training) const {
  return impl().invoke_masked({x.value}, {x.mask}, training);
}

MaskedTensor Layer::call_masked(const std::vector<MaskedTensor>& xs, bool training) const {
  std::vector<Tensor> values, masks;
  for (const MaskedTensor& x : xs) {
    values.push_back(x.value);
    masks.push_back(x.mask);
  }
  return impl().invoke_masked(values, masks, training);
}

SymbolicTensor Layer::operator()(const SymbolicTensor& x) const { return SymbolicTensor::apply(*this, {x}); }

SymbolicTensor Layer::operator()(const std::vector<SymbolicTensor>& xs) const { return SymbolicTensor::apply(*this, xs); }

std::vector<Tensor> Layer::outputs(const std::vector<Tensor>& xs, bool training) const {
  std::vector<Tensor> values;
  for (MaskedTensor& o : impl().invoke_outputs(xs, {}, training)) values.push_back(std::move(o.value));
  return values;
}

std::vector<MaskedTensor> Layer::call_masked_outputs(const std::vector<MaskedTensor>& xs, bool training) const {
  std::vector<Tensor> values, masks;
  for (const MaskedTensor& x : xs) {
    values.push_back(x.value);
    masks.push_back(x.mask);
  }
  return impl().invoke_outputs(values, masks, training);
}

std::vector<SymbolicTensor> Layer::outputs(const std::vector<SymbolicTensor>& xs) const {
  return SymbolicTensor::apply_all(*this, xs);
}

}  // namespace kiln::nn
