#include "nn/model.h"

#include <functional>
#include <iomanip>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "autograd/gradient_tape.h"
#include "nn/batch_rows.h"
#include "nn/checkpoint.h"
#include "nn/model_layer.h"
#include "nn/passes/fold_relu.h"
#include "nn/trainer.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {

Model::Model(const std::string& name) : name_(name) {}

Model::Model(const SymbolicTensor& input, const SymbolicTensor& output, const std::string& name)
    : Model(std::vector<SymbolicTensor>{input}, std::vector<SymbolicTensor>{output}, name) {}

Model::Model(const std::vector<SymbolicTensor>& inputs, const std::vector<SymbolicTensor>& outputs,
             const std::string& name)
    : name_(name.empty() ? unique_layer_name("model") : name) {
  if (inputs.empty() || outputs.empty()) throw std::invalid_argument("Model '" + name_ + "': needs inputs and outputs");
  graph_ = LayerGraph::from_symbolic(inputs, outputs, name_);
  plan_ = fold_relu(graph_);
  set_built_input(inputs[0].shape(), inputs[0].dtype(), true);
  check_unique_variable_names();
}

namespace {
void check_model_inputs(const std::string& name, const LayerGraph& graph, const std::vector<const Tensor*>& inputs) {
  if (inputs.size() != graph.inputs.size()) {
    throw std::invalid_argument("Model '" + name + "' takes " + std::to_string(graph.inputs.size()) + " inputs, got " +
                                std::to_string(inputs.size()));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Shape& want = graph.nodes[graph.inputs[i]].shape;
    const Shape& got = inputs[i]->shape();
    if (got.size() != want.size() + 1 || !std::equal(want.begin(), want.end(), got.begin() + 1)) {
      throw std::invalid_argument("Model '" + name + "' input " + std::to_string(i) + " expects shape [batch, " +
                                  shape_str(want).substr(1) + ", got " + inputs[i]->describe());
    }
  }
}
}  // namespace

std::vector<Tensor> Model::call(const std::vector<Tensor>& inputs, bool training) {
  if (!is_functional()) throw std::logic_error("Model '" + name_ + "': subclasses must override call()");
  std::vector<const Tensor*> check;
  for (const Tensor& t : inputs) check.push_back(&t);
  check_model_inputs(name_, graph_, check);
  return run_layer_graph(graph_, plan_, inputs, training);
}

std::vector<MaskedTensor> Model::call_masked(const std::vector<MaskedTensor>& inputs, bool training) {
  if (!is_functional()) {
    std::vector<Tensor> values;
    for (const MaskedTensor& m : inputs) values.push_back(m.value);
    std::vector<MaskedTensor> outs;
    for (Tensor& t : call(values, training)) outs.push_back({std::move(t), Tensor()});
    return outs;
  }
  std::vector<const Tensor*> check;
  for (const MaskedTensor& t : inputs) check.push_back(&t.value);
  check_model_inputs(name_, graph_, check);
  return run_layer_graph_masked(graph_, plan_, inputs, training);
}

std::vector<Layer> Model::layers() const { return graph_.layers(); }

const LayerGraph& Model::graph() const {
  if (!is_functional()) {
    throw std::logic_error("Model '" + name_ + "' is a subclassed model: its call() is C++ code, not a layer graph");
  }
  return graph_;
}

std::string Model::class_name() const { return is_functional() ? "Functional" : ""; }

Layer Model::as_layer() {
  std::lock_guard<std::mutex> lock(layer_mu_);
  if (std::shared_ptr<LayerImpl> existing = as_layer_.lock()) return Layer(existing);
  std::shared_ptr<Model> self = weak_from_this().lock();
  if (!self) {
    throw std::logic_error("Model '" + name_ +
                           "' is used as a layer, so it must be owned by a std::shared_ptr: make it with "
                           "std::make_shared (or move its std::unique_ptr into a std::shared_ptr)");
  }
  auto layer = std::make_shared<ModelLayer>(self);
  as_layer_ = layer;
  return Layer(layer);
}

SymbolicTensor Model::operator()(const SymbolicTensor& x) { return as_layer()(x); }
SymbolicTensor Model::operator()(const std::vector<SymbolicTensor>& xs) { return as_layer()(xs); }

void Model::note_input(const Tensor& x) {
  if (!built() && x.ndim() >= 1) set_built_input(Shape(x.shape().begin() + 1, x.shape().end()), x.dtype(), false);
}

std::optional<std::pair<Shape, DType>> Model::built_input() const {
  std::lock_guard<std::mutex> lock(build_mu_);
  return built_input_;
}

Tensor Model::operator()(const Tensor& x, bool training) {
  std::vector<Tensor> out = call({x}, training);
  if (out.size() != 1) throw std::logic_error("Model '" + name_ + "' has several outputs; use call()");
  note_input(x);
  return out[0];
}

namespace {
std::vector<Variable> gather(const std::vector<Layer>& layers, std::vector<Variable> (LayerImpl::*which)() const) {
  std::vector<Variable> out;
  out.reserve(2 * layers.size());  // a kernel and a bias each, mostly: one allocation
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
  // Functional and Sequential alike: one row per layer call in the graph.
  std::vector<std::pair<Layer, Shape>> rows;
  const LayerGraph& g = graph();
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    if (!g.is_input(n)) rows.emplace_back(g.nodes[n].layer, g.nodes[n].shape);
  }
  size_t label_width = 29;
  for (auto& [layer, shape] : rows) {
    label_width = std::max(label_width, layer->name().size() + layer->class_name().size() + 5);
  }
  std::ostringstream os;
  std::string rule(label_width + 36, '_'), thick(label_width + 36, '=');
  os << "Model: \"" << name_ << "\"\n" << rule << "\n";
  os << std::left << std::setw(label_width) << " Layer (type)" << std::setw(26) << "Output Shape" << "Param #\n" << thick << "\n";
  std::set<LayerImpl*> counted;
  int64_t total = 0, trainable = 0;
  for (auto& [layer, shape] : rows) {
    std::string label = " " + layer->name() + " (" + layer->class_name() + ")";
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
  std::shared_ptr<TrainingStrategy> strategy =
      options.strategy ? options.strategy : make_strategy(options.num_processes, options.distributed);
  if (strategy) {
    optimizer();  // not compiled: say so here, not in every rank
    if (std::optional<History> launched = strategy->launch(*this, train, options)) return *launched;
  }
  Trainer trainer(*this, loss(), optimizer(), options.callbacks, metric_names_);
  TrainOptions t;
  t.num_epochs = options.epochs;
  t.initial_epoch = options.initial_epoch;
  t.steps_per_epoch = options.steps_per_epoch;
  t.verbose = strategy ? strategy->progress_verbosity(options.verbose) : options.verbose;
  t.strategy = strategy;
  if (!strategy) return trainer.train(train, options.validation_data, t);
  History history;
  try {
    history = trainer.train(train, options.validation_data, t);
  } catch (const std::exception& e) {
    strategy->fail(e.what());  // the other ranks would wait for this one forever
    throw;
  }
  strategy->finish(*this, history);
  return history;
}

Logs Model::evaluate(const data::Dataset& data, int verbose) {
  Trainer trainer(*this, loss(), optimizer(), {}, metric_names_);
  return trainer.evaluate(data, verbose);
}

Tensor Model::predict(const data::Dataset& ds) { return predict_rows(ds, 0); }

Tensor Model::predict(const Tensor& x, int64_t batch_size) {
  data::Dataset ds = data::Dataset::from_tensor_slices(x).batch(batch_size);
  return predict_rows(ds, x.shape()[0]);
}

Tensor Model::predict_rows(const data::Dataset& ds, int64_t expected_rows) {
  const int64_t batches = ds.cardinality();
  if (batches < 0) throw std::invalid_argument("predict: the dataset is infinite (repeat() without a count)");
  if (batches == 0) throw std::invalid_argument("predict: the dataset is empty");
  BatchRows outputs("predict", expected_rows, batches);  // unbatched: each element is a batch of one
  data::BatchIterator it = ds.begin_iteration();
  while (auto b = it.next()) {
    Tensor x = ds.batched() ? b->x : expand_dims(b->x, 0);
    outputs.append(cast((*this)(x, false), DType::f32));
  }
  return outputs.result();
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

NamedTensors Model::training_state(int64_t next_epoch) const {
  NamedTensors entries;
  for (const Variable& v : variables()) entries.emplace_back(v.name(), v.value());
  for (auto& [n, t] : optimizer().slot_state(trainable_variables())) entries.emplace_back("optimizer/" + n, t);
  int64_t it = optimizer().iterations();
  entries.emplace_back("meta/optimizer_iterations", Tensor::from_int32({int32_t(it & 0x7fffffff), int32_t(it >> 31)}, {2}));
  entries.emplace_back("meta/next_epoch", Tensor::from_int32({int32_t(next_epoch)}, {1}));
  return entries;
}

void Model::save_checkpoint(const std::string& path, int64_t next_epoch) const {
  write_checkpoint(path, training_state(next_epoch));
}

int64_t Model::load_checkpoint(const std::string& path) {
  if (variables().empty()) {
    throw std::logic_error("Model '" + name_ + "' has no weights yet: build it (build() or one call) before loading");
  }
  optimizer();
  return load_training_state(read_checkpoint(path), path);
}

int64_t Model::load_training_state(const NamedTensors& entries, const std::string& path) {
  if (variables().empty()) {
    throw std::logic_error("Model '" + name_ + "' has no weights yet: build it (build() or one call) before loading");
  }
  optim::Optimizer& opt = optimizer();
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
  if (iters[0] < 0 || iters[1] < 0) {
    throw std::runtime_error("'" + path + "': meta/optimizer_iterations holds a negative half (" +
                             std::to_string(iters[0]) + ", " + std::to_string(iters[1]) + ")");
  }
  opt.set_iterations(int64_t(iters[0]) | (int64_t(iters[1]) << 31));
  return epoch[0];
}

Sequential::Sequential(const std::vector<Layer>& layers, const std::string& name)
    : Model(name.empty() ? unique_layer_name("sequential") : name) {
  for (const Layer& l : layers) add(l);
}

void Sequential::add(const Layer& layer) {
  if (!layer.defined()) throw std::invalid_argument("Sequential '" + name() + "': cannot add an empty layer");
  layers_.push_back(layer);
  std::lock_guard<std::mutex> lock(chain_mu_);
  chain_.reset();
}

std::vector<Tensor> Sequential::call(const std::vector<Tensor>& inputs, bool training) {
  if (inputs.size() != 1) throw std::invalid_argument("Sequential '" + name() + "' takes one input");
  if (layers_.empty()) throw std::logic_error("Sequential '" + name() + "' has no layers");
  return {call_masked({{inputs[0], Tensor()}}, training)[0].value};
}

std::vector<MaskedTensor> Sequential::call_masked(const std::vector<MaskedTensor>& inputs, bool training) {
  if (inputs.size() != 1) throw std::invalid_argument("Sequential '" + name() + "' takes one input");
  if (layers_.empty()) throw std::logic_error("Sequential '" + name() + "' has no layers");
  MaskedTensor x = inputs[0];
  for (const Layer& l : layers_) x = l.call_masked(x, training);
  return {x};
}

const LayerGraph& Sequential::graph() const {
  std::lock_guard<std::mutex> lock(chain_mu_);
  if (chain_) return *chain_;
  std::optional<std::pair<Shape, DType>> input = built_input();
  if (!input) {
    throw std::logic_error("Sequential '" + name() +
                           "' has no layer graph until its input shape is known: call build(input_shape) or call it "
                           "on data first");
  }
  if (layers_.empty()) throw std::logic_error("Sequential '" + name() + "' has no layers");
  auto g = std::make_shared<LayerGraph>();
  g->nodes.push_back({Layer(), {}, input->first, input->second});
  g->inputs = {0};
  Shape s{1};
  s.insert(s.end(), input->first.begin(), input->first.end());
  Tensor x = Tensor::zeros(s, input->second);
  for (const Layer& l : layers_) {
    x = l(x, false);
    g->nodes.push_back({l, {LayerGraph::Ref{g->nodes.size() - 1, 0}}, Shape(x.shape().begin() + 1, x.shape().end()), x.dtype()});
  }
  g->outputs = {LayerGraph::Ref{g->nodes.size() - 1, 0}};
  chain_ = g;
  return *chain_;
}

}  // namespace kiln::nn
