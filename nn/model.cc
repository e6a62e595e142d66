#include "nn/model.h"

#include <functional>
#include <iomanip>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "autograd/gradient_tape.h"
#include "nn/checkpoint.h"
#include "nn/trainer.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {

Model::Model(const std::string& name) : name_(name) {}

Model::Model(const SymbolicTensor& input, const SymbolicTensor& output, const std::string& name)
    : Model(std::vector<SymbolicTensor>{input}, std::vector<SymbolicTensor>{output}, name) {}

Model::Model(const std::vector<SymbolicTensor>& inputs, const std::vector<SymbolicTensor>& outputs,
             const std::string& name)
    : name_(name), inputs_(inputs), outputs_(outputs) {
  if (inputs.empty() || outputs.empty()) throw std::invalid_argument("Model '" + name + "': needs inputs and outputs");
  std::set<SymbolicTensor::Node*> input_nodes, done;
  for (const auto& in : inputs) {
    if (in.node()->layer.defined()) throw std::invalid_argument("Model '" + name + "': inputs must come from Input()");
    input_nodes.insert(in.node().get());
  }
  std::function<void(const std::shared_ptr<SymbolicTensor::Node>&)> visit = [&](const auto& node) {
    if (done.count(node.get())) return;
    if (!node->layer.defined() && !input_nodes.count(node.get())) {
      throw std::invalid_argument("Model '" + name + "': an output depends on an Input() not listed in the model's inputs");
    }
    for (const auto& in : node->inputs) visit(in.node());
    done.insert(node.get());
    if (node->layer.defined()) order_.push_back(node);
  };
  for (const auto& out : outputs) visit(out.node());
  // Fold Activation("relu") into a producer that can fuse it, when nothing else reads the
  // producer's own output (oneDNN then computes normalization/convolution and ReLU in one pass).
  std::map<const SymbolicTensor::Node*, int> readers;
  for (const auto& node : order_) {
    for (const auto& in : node->inputs) readers[in.node().get()]++;
  }
  for (const auto& out : outputs) readers[out.node().get()]++;
  for (const auto& node : order_) {
    if (!node->layer->is_relu_activation() || node->inputs.size() != 1) continue;
    const SymbolicTensor::Node* producer = node->inputs[0].node().get();
    if (producer->layer.defined() && readers[producer] == 1 && producer->layer->fuses_relu() &&
        !absorbed_relu_.count(producer)) {
      runs_with_relu_.insert(producer);
      absorbed_relu_.insert(node.get());
    }
  }
  set_built_input(inputs[0].shape(), inputs[0].dtype(), true);
  check_unique_variable_names();
}

std::vector<Tensor> Model::call(const std::vector<Tensor>& inputs, bool training) {
  if (inputs_.empty()) throw std::logic_error("Model '" + name_ + "': subclasses must override call()");
  if (inputs.size() != inputs_.size()) {
    throw std::invalid_argument("Model '" + name_ + "' takes " + std::to_string(inputs_.size()) + " inputs, got " +
                                std::to_string(inputs.size()));
  }
  std::unordered_map<const SymbolicTensor::Node*, Tensor> values;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Shape& want = inputs_[i].shape();
    const Shape& got = inputs[i].shape();
    if (got.size() != want.size() + 1 || !std::equal(want.begin(), want.end(), got.begin() + 1)) {
      throw std::invalid_argument("Model '" + name_ + "' input " + std::to_string(i) + " expects shape [batch, " +
                                  shape_str(want).substr(1) + ", got " + inputs[i].describe());
    }
    values[inputs_[i].node().get()] = inputs[i];
  }
  for (const auto& node : order_) {
    if (absorbed_relu_.count(node.get())) {
      values[node.get()] = values.at(node->inputs[0].node().get());  // its producer applied the ReLU
      continue;
    }
    std::vector<Tensor> args;
    for (const auto& in : node->inputs) args.push_back(values.at(in.node().get()));
    values[node.get()] = node->layer.impl().invoke(args, training, runs_with_relu_.count(node.get()) > 0);
  }
  std::vector<Tensor> outs;
  for (const auto& o : outputs_) outs.push_back(values.at(o.node().get()));
  return outs;
}

std::vector<Layer> Model::layers() const {
  std::vector<Layer> out;
  std::set<LayerImpl*> seen;
  for (const auto& node : order_) {
    if (seen.insert(node->layer.ptr().get()).second) out.push_back(node->layer);
  }
  return out;
}

Tensor Model::operator()(const Tensor& x, bool training) {
  std::vector<Tensor> out = call({x}, training);
  if (out.size() != 1) throw std::logic_error("Model '" + name_ + "' has several outputs; use call()");
  if (!built()) set_built_input(Shape(x.shape().begin() + 1, x.shape().end()), x.dtype(), false);
  return out[0];
}

namespace {
std::vector<Variable> gather(const std::vector<Layer>& layers, std::vector<Variable> (LayerImpl::*which)() const) {
  std::vector<Variable> out;
  for (const Layer& l : layers) {
    auto v = (l.impl().*which)();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}
}  // namespace

std::vector<Variable> Model::variables() const { return gather(layers(), &LayerImpl::variables); }
std::vector<Variable> Model::trainable_variables() const { return gather(layers(), &LayerImpl::trainable_variables); }
std::vector<Variable> Model::non_trainable_variables() const {
  return gather(layers(), &LayerImpl::non_trainable_variables);
}

int64_t Model::count_params() const {
  int64_t n = 0;
  for (const Layer& l : layers()) n += l->count_params();
  return n;
}

void Model::check_unique_variable_names() const {
  std::set<std::string> names;
  for (const Variable& v : variables()) {
    if (!names.insert(v.name()).second) {
      throw std::invalid_argument("Model '" + name_ + "': two variables are named '" + v.name() +
                                  "'; give the layers distinct names");
    }
  }
}

void Model::set_policy(const std::string& policy) {
  Policy p = policy_from_name(policy);
  for (const Layer& l : layers()) {
    if (l->built()) {
      throw std::logic_error("Model '" + name_ + "': set_policy must come before the model is built (layer '" +
                             l->name() + "' is built)");
    }
  }
  for (const Layer& l : layers()) l->set_policy(p);
}

void Model::build(const Shape& input_shape, DType dtype) {
  Shape s{1};
  s.insert(s.end(), input_shape.begin(), input_shape.end());
  call({Tensor::zeros(s, dtype)}, false);
  set_built_input(input_shape, dtype, true);
  check_unique_variable_names();
}

void Model::set_built_input(const Shape& shape, DType dtype, bool overwrite) {
  std::lock_guard<std::mutex> lock(build_mu_);
  if (built_.load(std::memory_order_relaxed) && !overwrite) return;
  built_input_ = std::make_pair(shape, dtype);
  built_.store(true, std::memory_order_release);
}

namespace {
std::string keras_class_name(const std::string& type) {
  static const std::map<std::string, std::string> names = {
      {"dense", "Dense"}, {"conv2d", "Conv2D"}, {"max_pooling2d", "MaxPooling2D"},
      {"average_pooling2d", "AveragePooling2D"}, {"global_average_pooling2d", "GlobalAveragePooling2D"},
      {"batch_normalization", "BatchNormalization"}, {"dropout", "Dropout"}, {"flatten", "Flatten"},
      {"rescaling", "Rescaling"}, {"activation", "Activation"}, {"add", "Add"}, {"softmax", "Softmax"}};
  auto it = names.find(type);
  return it == names.end() ? type : it->second;
}
std::string batch_shape(const Shape& s) {
  std::string out = "(None";
  for (int64_t d : s) out += ", " + std::to_string(d);
  return out + ")";
}
}  // namespace

std::string Model::summary() const {
  if (!built()) {
    throw std::logic_error("Model '" + name_ + "' is not built: call build(input_shape) or call it on data first");
  }
  std::vector<std::pair<Layer, Shape>> rows;
  if (!order_.empty()) {
    for (const auto& node : order_) rows.emplace_back(node->layer, node->shape);
  } else {
    Shape s{1};
    s.insert(s.end(), built_input_->first.begin(), built_input_->first.end());
    Tensor x = Tensor::zeros(s, built_input_->second);
    for (const Layer& l : layers()) {
      x = l(x, false);
      rows.emplace_back(l, Shape(x.shape().begin() + 1, x.shape().end()));
    }
  }
  size_t label_width = 29;
  for (auto& [layer, shape] : rows) {
    label_width = std::max(label_width, layer->name().size() + keras_class_name(layer->type_name()).size() + 5);
  }
  std::ostringstream os;
  std::string rule(label_width + 36, '_'), thick(label_width + 36, '=');
  os << "Model: \"" << name_ << "\"\n" << rule << "\n";
  os << std::left << std::setw(label_width) << " Layer (type)" << std::setw(26) << "Output Shape" << "Param #\n" << thick << "\n";
  std::set<LayerImpl*> counted;
  int64_t total = 0, trainable = 0;
  for (auto& [layer, shape] : rows) {
    std::string label = " " + layer->name() + " (" + keras_class_name(layer->type_name()) + ")";
    int64_t params = layer->count_params();
    os << std::setw(label_width) << label << std::setw(26) << batch_shape(shape) << params << "\n";
    if (counted.insert(layer.ptr().get()).second) {
      total += params;
      for (const Variable& v : layer->trainable_variables()) trainable += v.value().numel();
    }
  }
  os << thick << "\nTotal params: " << total << "\nTrainable params: " << trainable
     << "\nNon-trainable params: " << (total - trainable) << "\n" << rule << "\n";
  return os.str();
}

void Model::compile(const optim::Optimizer& optimizer, const Loss& loss, const std::vector<std::string>& metrics) {
  for (const std::string& m : metrics) make_metric(m, loss);  // reject unknown names now, not mid-fit
  optimizer_ = optimizer.clone();
  loss_ = loss.clone();
  metric_names_ = metrics;
}

optim::Optimizer& Model::optimizer() const {
  if (!optimizer_) throw std::logic_error("Model '" + name_ + "' is not compiled: call compile() first");
  return *optimizer_;
}

const Loss& Model::loss() const {
  if (!loss_) throw std::logic_error("Model '" + name_ + "' is not compiled: call compile() first");
  return *loss_;
}

History Model::fit(const data::Dataset& train, const FitOptions& options) {
  if (options.num_processes != 1) {
    throw std::invalid_argument("fit: num_processes=" + std::to_string(options.num_processes) +
                                " needs the MPI launcher (dist/), which this build does not include yet");
  }
  Trainer trainer(*this, loss(), optimizer(), options.callbacks, metric_names_);
  TrainOptions t;
  t.num_epochs = options.epochs;
  t.initial_epoch = options.initial_epoch;
  t.steps_per_epoch = options.steps_per_epoch;
  t.verbose = options.verbose;
  return trainer.train(train, options.validation_data, t);
}

Logs Model::evaluate(const data::Dataset& data, int verbose) {
  Trainer trainer(*this, loss(), optimizer(), {}, metric_names_);
  return trainer.evaluate(data, verbose);
}

Tensor Model::predict(const data::Dataset& ds) {
  std::vector<Tensor> outs;
  data::BatchIterator it = ds.begin_iteration();
  while (auto b = it.next()) {
    Tensor x = ds.batched() ? b->x : expand_dims(b->x, 0);
    outs.push_back(cast((*this)(x, false), DType::f32));
  }
  if (outs.empty()) throw std::invalid_argument("predict: the dataset is empty");
  return outs.size() == 1 ? outs[0] : concat(outs, 0);
}

Tensor Model::predict(const Tensor& x, int64_t batch_size) {
  return predict(data::Dataset::from_tensor_slices(x).batch(batch_size));
}

void Model::save_weights(const std::string& path) const {
  NamedTensors entries;
  for (const Variable& v : variables()) entries.emplace_back(v.name(), v.value());
  write_checkpoint(path, entries);
}

namespace {

// A load is all or nothing: everything is read and validated into these pairs first, and
// only then copied into the model, so a failed load leaves the model exactly as it was.
using StagedCopies = std::vector<std::pair<Variable, const Tensor*>>;

bool is_training_state(const std::string& name) {
  return name.rfind("optimizer/", 0) == 0 || name.rfind("meta/", 0) == 0;
}

StagedCopies stage_variables(const std::vector<Variable>& vars, const NamedTensors& entries, const std::string& path) {
  std::unordered_map<std::string, const Tensor*> by_name;
  for (const auto& [n, t] : entries) {
    if (!is_training_state(n)) by_name[n] = &t;
  }
  StagedCopies staged;
  for (const Variable& v : vars) {
    auto it = by_name.find(v.name());
    if (it == by_name.end()) throw std::runtime_error("'" + path + "' has no weights for variable '" + v.name() + "'");
    if (it->second->shape() != v.shape() || it->second->dtype() != v.dtype()) {
      throw std::runtime_error("'" + path + "': variable '" + v.name() + "' is saved as " + it->second->describe() +
                               " but the model has " + v.value().describe());
    }
    staged.emplace_back(v, it->second);
    by_name.erase(it);
  }
  if (!by_name.empty()) {
    throw std::runtime_error("'" + path + "' holds weights for '" + by_name.begin()->first +
                             "', which this model does not have (" + std::to_string(by_name.size()) +
                             " unmatched entries): it was saved from a different model");
  }
  return staged;
}

void commit(const StagedCopies& staged) {
  for (const auto& [v, t] : staged) v.value().copy_from(*t);
}

// A meta entry must be exactly what save_checkpoint writes: s32 of the given length.
std::vector<int32_t> meta_values(const NamedTensors& entries, const std::string& key, int64_t length,
                                 const std::string& path) {
  for (const auto& [n, t] : entries) {
    if (n != key) continue;
    if (t.dtype() != DType::s32 || t.shape() != Shape{length}) {
      throw std::runtime_error("'" + path + "': entry '" + key + "' is " + t.describe() + ", expected s32[" +
                               std::to_string(length) + "]");
    }
    std::vector<int32_t> v = t.to_int32();
    for (int32_t x : v) {
      if (x < 0) throw std::runtime_error("'" + path + "': entry '" + key + "' holds a negative value");
    }
    return v;
  }
  return {};
}

}  // namespace

void Model::load_weights(const std::string& path) {
  if (variables().empty()) {
    throw std::logic_error("Model '" + name_ + "' has no weights yet: build it (build() or one call) before loading");
  }
  NamedTensors entries = read_checkpoint(path);
  commit(stage_variables(variables(), entries, path));
}

void Model::save_checkpoint(const std::string& path, int64_t next_epoch) const {
  NamedTensors entries;
  for (const Variable& v : variables()) entries.emplace_back(v.name(), v.value());
  for (auto& [n, t] : optimizer().slot_state(trainable_variables())) entries.emplace_back("optimizer/" + n, t);
  int64_t it = optimizer().iterations();
  entries.emplace_back("meta/optimizer_iterations", Tensor::from_int32({int32_t(it & 0x7fffffff), int32_t(it >> 31)}, {2}));
  entries.emplace_back("meta/next_epoch", Tensor::from_int32({int32_t(next_epoch)}, {1}));
  write_checkpoint(path, entries);
}

int64_t Model::load_checkpoint(const std::string& path) {
  if (variables().empty()) {
    throw std::logic_error("Model '" + name_ + "' has no weights yet: build it (build() or one call) before loading");
  }
  optim::Optimizer& opt = optimizer();
  NamedTensors entries = read_checkpoint(path);
  std::vector<int32_t> epoch = meta_values(entries, "meta/next_epoch", 1, path);
  std::vector<int32_t> iters = meta_values(entries, "meta/optimizer_iterations", 2, path);
  if (epoch.empty() || iters.empty()) {
    throw std::runtime_error("'" + path + "' holds weights only (no training state); use load_weights()");
  }
  StagedCopies staged = stage_variables(variables(), entries, path);
  NamedTensors slots;
  for (auto& [n, t] : entries) {
    if (n.rfind("optimizer/", 0) == 0) slots.emplace_back(n.substr(10), t);
  }
  try {
    opt.check_slot_state(trainable_variables(), slots);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("'" + path + "': " + e.what());
  }
  commit(staged);
  opt.load_slot_state(trainable_variables(), slots);
  opt.set_iterations(int64_t(iters[0]) | (int64_t(iters[1]) << 31));
  return epoch[0];
}

Sequential::Sequential(const std::vector<Layer>& layers, const std::string& name) : Model(name) {
  for (const Layer& l : layers) add(l);
}

void Sequential::add(const Layer& layer) {
  if (!layer.defined()) throw std::invalid_argument("Sequential '" + name() + "': cannot add an empty layer");
  layers_.push_back(layer);
}

std::vector<Tensor> Sequential::call(const std::vector<Tensor>& inputs, bool training) {
  if (inputs.size() != 1) throw std::invalid_argument("Sequential '" + name() + "' takes one input");
  if (layers_.empty()) throw std::logic_error("Sequential '" + name() + "' has no layers");
  Tensor x = inputs[0];
  for (const Layer& l : layers_) x = l(x, training);
  return {x};
}

}  // namespace kiln::nn
