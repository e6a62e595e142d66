#include "nn/model_config.h"

#include <deque>
#include <map>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "base/registry.h"
#include "nn/config_reader.h"
#include "nn/layer_registry.h"

namespace kiln::nn {
namespace {

// Far beyond real models (ResNet-152 has about 500 layer calls); keeps a hostile file's work
// bounded however the bytes are spent.
constexpr size_t kMaxLayerCalls = 1 << 16;
constexpr size_t kMaxInputRank = 8;

base::Registry<ModelFactory>& model_registry() {
  static base::Registry<ModelFactory> r;
  return r;
}

Config batch_shape_config(const Shape& shape) {
  Config c = Config::list({Config()});
  for (int64_t d : shape) c.push_back(d);
  return c;
}

// [null, d1, ...] -> {d1, ...}: every dim positive, the whole within the loader's limits.
Shape read_batch_shape(const Config& v, const std::string& owner, const std::string& key) {
  if (!v.is_list() || v.size() < 1 || v.size() > kMaxInputRank + 1 || !v[0].is_null()) {
    throw std::invalid_argument(owner + ": '" + key + "' must be a list [null, dims...] of at most " +
                                std::to_string(kMaxInputRank) + " dims");
  }
  Shape s;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i].kind() != Config::Kind::integer || v[i].as_int() < 1 || v[i].as_int() > kMaxConfigSize) {
      throw std::invalid_argument(owner + ": '" + key + "' dims must be integers in [1, " +
                                  std::to_string(kMaxConfigSize) + "]");
    }
    s.push_back(v[i].as_int());
  }
  return s;
}

DType read_dtype(ConfigReader& r, const std::string& key) {
  std::string name = r.string(key, "float32");
  static const std::map<std::string, DType> names = {
      {"float32", DType::f32}, {"bfloat16", DType::bf16}, {"int8", DType::s8}, {"uint8", DType::u8}, {"int32", DType::s32}};
  auto it = names.find(name);
  if (it == names.end()) r.fail(key, "is '" + name + "', not one of float32, bfloat16, int8, uint8, int32");
  return it->second;
}

void check_input_limits(const Shape& shape, DType dtype, const std::string& what) {
  if (ScopedBuildLimits* limits = ScopedBuildLimits::current()) {
    Shape s{1};
    s.insert(s.end(), shape.begin(), shape.end());
    limits->check_activation(s, dtype, what);
  }
}

std::string model_name(ConfigReader& r, const char* fallback) {
  std::string name = r.string("name", "");
  if (r.has("name") && (name.empty() || name.find('\0') != std::string::npos)) {
    r.fail("name", "must be a non-empty string without NUL characters");
  }
  return name.empty() ? unique_layer_name(fallback) : name;
}

// --- Functional ---

struct Ref {
  size_t entry, node, tensor;
};

Config ref_config(const std::string& name, size_t node, size_t tensor) {
  return Config::list({name, static_cast<int64_t>(node), static_cast<int64_t>(tensor)});
}

struct Entry {
  std::string name;
  bool is_input = false;
  const Config* class_config = nullptr;
  std::string class_name;
  size_t num_calls = 0;  // known before `calls` is filled, so references can be checked
  std::vector<std::vector<Ref>> calls;
  Layer layer;
  std::vector<std::vector<SymbolicTensor>> outputs;  // each call's (the input tensor for an InputLayer)
};

Ref read_ref(const Config& v, const std::unordered_map<std::string, size_t>& by_name, const std::vector<Entry>& entries,
             const std::string& owner) {
  if (!v.is_list() || v.size() != 3 || v[0].kind() != Config::Kind::string || v[1].kind() != Config::Kind::integer ||
      v[2].kind() != Config::Kind::integer) {
    throw std::invalid_argument(owner + ": a node reference must be [layer name, node index, tensor index]");
  }
  auto it = by_name.find(v[0].as_string());
  if (it == by_name.end()) throw std::invalid_argument(owner + " refers to an unknown layer '" + v[0].as_string() + "'");
  const Entry& e = entries[it->second];
  int64_t node = v[1].as_int();
  size_t calls = e.is_input ? 1 : e.num_calls;
  if (node < 0 || static_cast<size_t>(node) >= calls) {
    throw std::invalid_argument(owner + " refers to node " + std::to_string(node) + " of layer '" + e.name + "', which has " +
                                std::to_string(calls));
  }
  // The tensor index is checked against the layer's outputs once the layer exists (tensor_of).
  if (v[2].as_int() < 0 || v[2].as_int() > kMaxConfigSize) {
    throw std::invalid_argument(owner + ": tensor index " + std::to_string(v[2].as_int()) + " of layer '" + e.name +
                                "' is out of range");
  }
  return {it->second, static_cast<size_t>(node), static_cast<size_t>(v[2].as_int())};
}

const SymbolicTensor& tensor_of(const Ref& ref, const std::vector<Entry>& entries, const std::string& owner) {
  const std::vector<SymbolicTensor>& outs = entries[ref.entry].outputs[ref.node];
  if (ref.tensor >= outs.size()) {
    throw std::invalid_argument(owner + " refers to tensor " + std::to_string(ref.tensor) + " of layer '" +
                                entries[ref.entry].name + "', which has " + std::to_string(outs.size()) + " output(s)");
  }
  return outs[ref.tensor];
}

std::shared_ptr<Model> functional_from_config(const Config& config) {
  ConfigReader r(config, "Functional config");
  std::string name = model_name(r, "model");
  r.boolean("trainable", true);  // the flag of the layer handle (see registered below)
  const Config& layers = r.get("layers");
  const Config& input_layers = r.get("input_layers");
  const Config& output_layers = r.get("output_layers");
  r.finish();
  const std::string owner = "Functional config of '" + name + "'";
  if (!layers.is_list() || !input_layers.is_list() || !output_layers.is_list()) {
    throw std::invalid_argument(owner + ": 'layers', 'input_layers' and 'output_layers' must be lists");
  }
  if (input_layers.size() == 0 || output_layers.size() == 0) throw std::invalid_argument(owner + " has no inputs or outputs");

  // Pass 1: names, classes and the shape of every entry.
  std::vector<Entry> entries(layers.size());
  std::unordered_map<std::string, size_t> by_name;
  size_t total_calls = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    ConfigReader e(layers[i], owner + ", layer " + std::to_string(i));
    Entry& entry = entries[i];
    entry.class_name = e.string("class_name");
    entry.name = e.string("name");
    entry.class_config = &e.get("config");
    const Config& inbound = e.get("inbound_nodes");
    e.finish();
    if (!by_name.emplace(entry.name, i).second) throw std::invalid_argument(owner + ": two layers are named '" + entry.name + "'");
    if (!inbound.is_list()) throw std::invalid_argument(owner + ": 'inbound_nodes' of '" + entry.name + "' must be a list");
    entry.is_input = entry.class_name == "InputLayer";
    if (entry.is_input && inbound.size() != 0) {
      throw std::invalid_argument(owner + ": InputLayer '" + entry.name + "' cannot have inbound nodes");
    }
    if (!entry.is_input && inbound.size() == 0) {
      throw std::invalid_argument(owner + ": layer '" + entry.name + "' is never called");
    }
    entry.num_calls = inbound.size();
    total_calls += inbound.size();
    if (total_calls > kMaxLayerCalls) {
      throw std::invalid_argument(owner + " has more than " + std::to_string(kMaxLayerCalls) + " layer calls");
    }
  }
  // Pass 2: every reference resolved and checked before any layer exists.
  for (size_t i = 0; i < layers.size(); ++i) {
    const Config& inbound = layers[i].at("inbound_nodes");
    for (size_t k = 0; k < inbound.size(); ++k) {
      const Config& call = inbound[k];
      std::string where = owner + ", call " + std::to_string(k) + " of '" + entries[i].name + "'";
      if (!call.is_list() || call.size() == 0) throw std::invalid_argument(where + " must be a non-empty list of node references");
      std::vector<Ref> refs;
      for (const Config& ref : call.items()) refs.push_back(read_ref(ref, by_name, entries, where));
      entries[i].calls.push_back(std::move(refs));
    }
  }
  std::vector<Ref> ins, outs;
  for (const Config& ref : input_layers.items()) {
    Ref in = read_ref(ref, by_name, entries, owner + " 'input_layers'");
    if (!entries[in.entry].is_input) throw std::invalid_argument(owner + ": input '" + entries[in.entry].name + "' is not an InputLayer");
    ins.push_back(in);
  }
  for (const Config& ref : output_layers.items()) outs.push_back(read_ref(ref, by_name, entries, owner + " 'output_layers'"));
  std::set<size_t> listed;
  for (const Ref& in : ins) {
    if (!listed.insert(in.entry).second) throw std::invalid_argument(owner + ": input '" + entries[in.entry].name + "' is listed twice");
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].is_input && !listed.count(i)) {
      throw std::invalid_argument(owner + ": InputLayer '" + entries[i].name + "' is not among 'input_layers'");
    }
  }

  // Inputs, then every layer object (constructors check their arguments; nothing allocates).
  for (Entry& e : entries) {
    if (e.is_input) {
      ConfigReader ic(*e.class_config, owner + ", InputLayer '" + e.name + "'");
      Shape shape = read_batch_shape(ic.get("batch_shape"), owner + ", InputLayer '" + e.name + "'", "batch_shape");
      DType dtype = read_dtype(ic, "dtype");
      if (ic.string("name", e.name) != e.name) ic.fail("name", "differs from the entry's name '" + e.name + "'");
      ic.finish();
      check_input_limits(shape, dtype, e.name);
      e.outputs.push_back({Input(shape, dtype)});
    } else {
      e.layer = layer_from_config(e.class_name, *e.class_config);
      if (e.layer->name() != e.name) {
        throw std::invalid_argument(owner + ": layer entry '" + e.name + "' holds a config named '" + e.layer->name() + "'");
      }
    }
  }

  // Calls in dependency order (Kahn's algorithm: linear, no recursion, detects cycles).
  struct Call {
    size_t entry, index, waiting = 0;
    std::vector<size_t> dependents;
  };
  std::vector<Call> calls;
  std::vector<std::vector<size_t>> call_id(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    for (size_t k = 0; k < entries[i].calls.size(); ++k) {
      call_id[i].push_back(calls.size());
      calls.push_back({i, k, 0, {}});
    }
  }
  for (Call& c : calls) {
    for (const Ref& ref : entries[c.entry].calls[c.index]) {
      if (entries[ref.entry].is_input) continue;
      calls[call_id[ref.entry][ref.node]].dependents.push_back(&c - calls.data());
      ++c.waiting;
    }
  }
  std::deque<size_t> ready;
  for (size_t id = 0; id < calls.size(); ++id) {
    if (calls[id].waiting == 0) ready.push_back(id);
  }
  for (Entry& e : entries) e.outputs.resize(e.is_input ? 1 : e.calls.size());
  size_t done = 0;
  while (!ready.empty()) {
    Call& c = calls[ready.front()];
    ready.pop_front();
    Entry& e = entries[c.entry];
    std::vector<SymbolicTensor> args;
    const std::string where = owner + ", call " + std::to_string(c.index) + " of '" + e.name + "'";
    for (const Ref& ref : e.calls[c.index]) args.push_back(tensor_of(ref, entries, where));
    e.outputs[c.index] = e.layer.outputs(args);
    ++done;
    for (size_t d : c.dependents) {
      if (--calls[d].waiting == 0) ready.push_back(d);
    }
  }
  if (done != calls.size()) {
    for (const Call& c : calls) {
      if (c.waiting > 0) {
        throw std::invalid_argument(owner + ": the layer graph has a cycle (call " + std::to_string(c.index) + " of '" +
                                    entries[c.entry].name + "' waits on itself)");
      }
    }
  }
  std::vector<SymbolicTensor> inputs, outputs;
  for (const Ref& in : ins) inputs.push_back(tensor_of(in, entries, owner + " 'input_layers'"));
  for (const Ref& out : outs) outputs.push_back(tensor_of(out, entries, owner + " 'output_layers'"));
  auto model = std::make_shared<Model>(inputs, outputs, name);
  std::set<const LayerImpl*> used;
  for (const Layer& l : model->layers()) used.insert(l.ptr().get());
  for (const Entry& e : entries) {
    if (!e.is_input && !used.count(e.layer.ptr().get())) {
      throw std::invalid_argument(owner + ": layer '" + e.name + "' does not lead to any output");
    }
  }
  return model;
}

// --- Sequential ---

std::shared_ptr<Model> sequential_from_config(const Config& config) {
  ConfigReader r(config, "Sequential config");
  std::string name = model_name(r, "sequential");
  r.boolean("trainable", true);  // the flag of the layer handle (see registered below)
  const Config& layers = r.get("layers");
  const Config* build_shape = r.optional("build_input_shape");
  DType dtype = read_dtype(r, "input_dtype");
  r.finish();
  const std::string owner = "Sequential config of '" + name + "'";
  if (!layers.is_list()) throw std::invalid_argument(owner + ": 'layers' must be a list");
  if (layers.size() > kMaxLayerCalls) throw std::invalid_argument(owner + " has more than " + std::to_string(kMaxLayerCalls) + " layers");
  std::vector<Layer> list;
  for (const Config& l : layers.items()) list.push_back(deserialize_layer(l));
  auto model = std::make_shared<Sequential>(list, name);
  if (build_shape) {
    Shape shape = read_batch_shape(*build_shape, owner, "build_input_shape");
    check_input_limits(shape, dtype, name + " input");
    if (ScopedBuildLimits* limits = ScopedBuildLimits::current()) {
      // Each layer's output size is checked before build() runs the chain on zeros.
      Shape s{1};
      s.insert(s.end(), shape.begin(), shape.end());
      for (const Layer& l : list) {
        std::optional<Shape> out = l->compute_output_shape({s});
        if (!out) break;
        limits->check_activation(*out, DType::f32, l->name());
        limits->take_compute(l->compute_cost({s}), l->name());
        s = *out;
      }
    }
    if (list.empty()) throw std::invalid_argument(owner + " has a build shape but no layers");
    model->build(shape, dtype);
  }
  return model;
}

// A nested model's config carries its layer handle's trainable flag (ModelLayer::config()).
Layer as_nested_layer(const std::shared_ptr<Model>& model, const Config& config) {
  Layer layer = model->as_layer();
  if (const Config* t = config.find("trainable")) layer->trainable = t->as_bool();
  return layer;
}

const bool registered = [] {
  register_layer("Functional", [](const Config& c) { return as_nested_layer(functional_from_config(c), c); });
  register_layer("Sequential", [](const Config& c) { return as_nested_layer(sequential_from_config(c), c); });
  return true;
}();

}  // namespace

std::string keras_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "float32";
    case DType::bf16: return "bfloat16";
    case DType::s8: return "int8";
    case DType::u8: return "uint8";
    case DType::s32: return "int32";
  }
  return "?";
}

Config input_spec_config(const Shape& shape, DType dtype) {
  Config c = Config::map();
  c.set("input_shape", batch_shape_config(shape));
  c.set("dtype", keras_dtype_name(dtype));
  return c;
}

std::pair<Shape, DType> read_input_spec(const Config& config, const std::string& owner) {
  ConfigReader r(config, owner);
  Shape shape = read_batch_shape(r.get("input_shape"), owner, "input_shape");
  DType dtype = read_dtype(r, "dtype");
  r.finish();
  check_input_limits(shape, dtype, owner);
  return {shape, dtype};
}

void register_model(const std::string& class_name, ModelFactory factory) {
  if (class_name.empty() || !factory) throw std::invalid_argument("register_model: needs a class name and a factory");
  if (class_name == "Functional" || class_name == "Sequential" || class_name == "InputLayer") {
    throw std::invalid_argument("register_model: '" + class_name + "' is built in");
  }
  model_registry().add(class_name, factory);
  register_layer(class_name, [class_name](const Config& c) { return model_from_config(class_name, c)->as_layer(); });
}

bool is_model_registered(const std::string& class_name) {
  if (class_name == "Functional" || class_name == "Sequential") return true;
  return model_registry().contains(class_name);
}

std::shared_ptr<Model> model_from_config(const std::string& class_name, const Config& config) {
  if (class_name == "Functional") return functional_from_config(config);
  if (class_name == "Sequential") return sequential_from_config(config);
  std::optional<ModelFactory> factory = model_registry().find(class_name);
  if (!factory) {
    throw std::invalid_argument("unknown model class '" + class_name +
                                "': register a factory for it with kiln::nn::register_model(\"" + class_name +
                                "\", factory) before loading");
  }
  std::shared_ptr<Model> model = (*factory)(config);
  if (!model) throw std::invalid_argument("the factory for model class '" + class_name + "' returned no model");
  if (model->class_name() != class_name) {
    throw std::invalid_argument("the factory for model class '" + class_name + "' made a model whose class_name() is '" +
                                model->class_name() + "'");
  }
  return model;
}

// --- configs of models ---

Config Model::config() const {
  if (!is_functional()) {
    Config c = Config::map();
    c.set("name", name_);
    return c;
  }
  const LayerGraph& g = graph_;
  std::vector<Layer> layers = g.layers();
  std::set<std::string> used;
  for (const Layer& l : layers) {
    if (!used.insert(l->name()).second) {
      throw std::invalid_argument("Model '" + name_ + "': two layers are named '" + l->name() +
                                  "'; a config refers to layers by name, so give them distinct names");
    }
  }
  // Names and node indices: inputs get fresh names; a layer's calls are numbered in graph order.
  std::vector<std::string> node_name(g.nodes.size());
  std::vector<size_t> node_index(g.nodes.size(), 0);
  std::map<const LayerImpl*, size_t> calls;
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    if (g.is_input(n)) {
      std::string base = "input_layer", candidate = base;
      for (int k = 1; used.count(candidate); ++k) candidate = base + "_" + std::to_string(k);
      used.insert(candidate);
      node_name[n] = candidate;
    } else {
      node_name[n] = g.nodes[n].layer->name();
      node_index[n] = calls[g.nodes[n].layer.ptr().get()]++;
    }
  }
  Config list = Config::list();
  for (size_t in : g.inputs) {
    Config ic = Config::map();
    ic.set("batch_shape", batch_shape_config(g.nodes[in].shape));
    ic.set("dtype", keras_dtype_name(g.nodes[in].dtype));
    ic.set("name", node_name[in]);
    Config entry = Config::map();
    entry.set("class_name", "InputLayer").set("name", node_name[in]).set("config", ic).set("inbound_nodes", Config::list());
    list.push_back(entry);
  }
  for (const Layer& l : layers) {
    Config inbound = Config::list();
    for (size_t n = 0; n < g.nodes.size(); ++n) {
      if (g.nodes[n].layer.ptr() != l.ptr()) continue;
      Config call = Config::list();
      for (const LayerGraph::Ref& in : g.nodes[n].inbound) call.push_back(ref_config(node_name[in.node], node_index[in.node], in.output));
      inbound.push_back(call);
    }
    Config entry = Config::map();
    entry.set("class_name", l->class_name()).set("name", l->name()).set("config", l->config()).set("inbound_nodes", inbound);
    list.push_back(entry);
  }
  Config ins = Config::list(), outs = Config::list();
  for (size_t in : g.inputs) ins.push_back(ref_config(node_name[in], node_index[in], 0));
  for (const LayerGraph::Ref& out : g.outputs) outs.push_back(ref_config(node_name[out.node], node_index[out.node], out.output));
  Config c = Config::map();
  c.set("name", name_).set("layers", list).set("input_layers", ins).set("output_layers", outs);
  return c;
}

Config Sequential::config() const {
  Config list = Config::list();
  for (const Layer& l : layers_) list.push_back(serialize_layer(l));
  Config c = Config::map();
  c.set("name", name()).set("layers", list);
  if (std::optional<std::pair<Shape, DType>> in = built_input()) {
    c.set("build_input_shape", batch_shape_config(in->first));
    c.set("input_dtype", keras_dtype_name(in->second));
  }
  return c;
}

}  // namespace kiln::nn
