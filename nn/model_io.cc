#include "nn/model_io.h"

#include <cxxabi.h>

#include <cstdlib>
#include <stdexcept>
#include <set>
#include <typeinfo>

#include "base/byte_io.h"
#include "base/files.h"
#include "nn/compile_state.h"
#include "nn/config_reader.h"
#include "nn/model_config.h"
#include "nn/model_layer.h"

namespace kiln::nn {
namespace {

constexpr base::FileFormat kFormat{"KILNMODL", "saved model", 1};
constexpr char kTags[4][5] = {"ARCH", "WGTS", "COMP", "OPTS"};

void put_section(base::ByteWriter& w, const char* tag, const std::string& bytes) {
  w.bytes(tag, 4);
  w.put<uint64_t>(bytes.size());
  w.bytes(bytes);
}

std::string demangled(const std::type_info& type) {
  int status = 0;
  char* name = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name ? name : type.name();
  std::free(name);
  return out;
}

std::string short_class_name(const std::string& qualified) {
  size_t colon = qualified.rfind("::");
  return colon == std::string::npos ? qualified : qualified.substr(colon + 2);
}

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw std::runtime_error("saved model '" + source + "': " + what);
}

}  // namespace

std::string serialize_model(const Model& model, const SaveModelOptions& options) {
  if (!model.built()) {
    throw std::logic_error("save_model: Model '" + model.name() +
                           "' is not built: call build(input_shape) or call it on data first");
  }
  std::string class_name = model.class_name();
  if (class_name.empty()) {
    std::string cls = demangled(typeid(model));
    std::string name = short_class_name(cls);
    throw std::invalid_argument(
        "save_model: Model '" + model.name() + "' is a subclassed model (" + cls +
        " overrides call()), and C++ code cannot be stored in a file. Make it loadable: override class_name() to "
        "return \"" + name + "\" (and config() to return its constructor arguments), and register a factory with "
        "kiln::nn::register_model(\"" + name + "\", [](const kiln::nn::Config& c) { return std::make_shared<" + cls +
        ">(/* from c */); }) in the program that loads it. Or build it as a functional or Sequential model.");
  }
  Config arch = Config::map();
  arch.set("class_name", class_name);
  arch.set("config", model.config());
  if (!model.is_functional() && class_name != "Sequential") {
    std::optional<std::pair<Shape, DType>> in = model.built_input();
    if (!in) throw std::logic_error("save_model: Model '" + model.name() + "' does not know its input shape");
    arch.set("build_config", input_spec_config(in->first, in->second));
  }
  NamedTensors weights;
  for (const Variable& v : model.variables()) weights.emplace_back(v.name(), v.value());

  base::ByteWriter w = base::start_file(kFormat);
  bool with_compile = options.include_optimizer && model.compiled();
  w.put<uint32_t>(with_compile ? 4 : 2);
  put_section(w, kTags[0], arch.to_json());
  put_section(w, kTags[1], serialize_checkpoint(weights));
  if (with_compile) {
    CompileState state = save_compile_state(const_cast<Model&>(model));
    put_section(w, kTags[2], state.config.to_json());
    put_section(w, kTags[3], serialize_checkpoint(state.slots));
  }
  return w.finish_with_crc();
}

void save_model(const Model& model, const std::string& path, const SaveModelOptions& options) {
  base::write_file_atomically(path, serialize_model(model, options));
}

SavedModel parse_saved_model(std::string_view bytes, const std::string& source) {
  base::ByteReader r = base::open_file(bytes, kFormat, source);
  uint32_t count = r.get<uint32_t>("section count");
  if (count != 2 && count != 4) r.fail("has " + std::to_string(count) + " sections; expected 2 or 4");
  std::string_view sections[4];
  for (uint32_t i = 0; i < count; ++i) {
    const std::string tag = kTags[i];
    if (r.take(4, ("the header of section " + tag).c_str()) != tag) {
      r.fail("section " + std::to_string(i) + " should be " + tag);
    }
    uint64_t length = r.get<uint64_t>(("the length of section " + tag).c_str());
    if (length > r.remaining()) {
      r.fail("section " + tag + " declares " + std::to_string(length) + " bytes but " + std::to_string(r.remaining()) +
             " remain");
    }
    sections[i] = r.take(length, tag.c_str());
  }
  r.expect_end("the last section");

  SavedModel saved;
  saved.architecture = parse_config_json(sections[0], source + " (architecture)");
  try {
    ConfigReader r(saved.architecture, "the architecture");
    r.string("class_name");
    if (!r.get("config").is_map()) r.fail("config", "must be a map");
    if (const Config* b = r.optional("build_config"); b && !b->is_map()) r.fail("build_config", "must be a map");
    r.finish();
  } catch (const std::invalid_argument& e) {
    fail(source, e.what());
  }
  saved.weights = parse_checkpoint(sections[1], source + " (weights)");
  if (count == 4) {
    saved.compile = parse_config_json(sections[2], source + " (compile state)");
    if (!saved.compile->is_map()) fail(source, "the compile state must be a map");
    saved.optimizer_slots = parse_checkpoint(sections[3], source + " (optimizer slots)");
  }
  return saved;
}

namespace {

// The variables of subclassed models (the model itself or nested ones): their layers are made
// by C++ code that may name them afresh in each process.
void collect_renamable(const Model& model, std::set<uint64_t>& out) {
  if (!model.is_functional() && model.class_name() != "Sequential") {
    for (const Variable& v : model.variables()) out.insert(v.value().id());
    return;
  }
  for (const Layer& l : model.layers()) {
    if (auto* nested = dynamic_cast<const ModelLayer*>(&l.impl())) collect_renamable(*nested->model(), out);
  }
}

// Weights go to variables by position, as Keras's legacy HDF5 loader does: a model rebuilt from
// the config lists its variables in the saved order. Shapes and dtypes must match, and so must
// names, except where subclassed models may have named their layers afresh.
std::vector<std::pair<Variable, const Tensor*>> match_weights(const Model& model, const NamedTensors& weights,
                                                              const std::string& source) {
  std::vector<Variable> vars = model.variables();
  if (vars.size() != weights.size()) {
    fail(source, "holds " + std::to_string(weights.size()) + " weights, but the model it describes has " +
                     std::to_string(vars.size()) + " variables");
  }
  std::set<uint64_t> renamable;
  collect_renamable(model, renamable);
  std::vector<std::pair<Variable, const Tensor*>> staged;
  for (size_t i = 0; i < vars.size(); ++i) {
    const Variable& v = vars[i];
    const auto& [name, t] = weights[i];
    if (name != v.name() && !renamable.count(v.value().id())) {
      fail(source, "weight " + std::to_string(i) + " is named '" + name + "' but the model's variable " +
                       std::to_string(i) + " is '" + v.name() + "'");
    }
    if (t.shape() != v.shape() || t.dtype() != v.dtype()) {
      fail(source, "variable '" + v.name() + "' is saved as " + t.describe() + " but the model has " +
                       v.value().describe());
    }
    staged.emplace_back(v, &t);
  }
  return staged;
}

}  // namespace

uint64_t load_activation_budget(uint64_t weight_bytes) {
  uint64_t scaled = 0;
  if (__builtin_mul_overflow(weight_bytes, kLoadActivationBytesPerWeightByte, &scaled)) return UINT64_MAX;
  return scaled > UINT64_MAX - kMaxLoadActivationBytes ? UINT64_MAX : scaled + kMaxLoadActivationBytes;
}

std::shared_ptr<Model> build_saved_model(const SavedModel& saved, const std::string& source) {
  uint64_t weight_bytes = 0;
  for (const auto& [n, t] : saved.weights) weight_bytes += t.nbytes();
  const std::string class_name = saved.architecture.at("class_name").as_string();
  std::shared_ptr<Model> model;
  try {
    ScopedBuildLimits limits(
        {weight_bytes, kMaxLoadActivationBytes, kMaxLoadMultiplyAdds, load_activation_budget(weight_bytes)}, source);
    model = model_from_config(class_name, saved.architecture.at("config"));
    if (const Config* build = saved.architecture.find("build_config"); build && !build->is_null()) {
      if (model->is_functional() || class_name == "Sequential") {
        throw std::invalid_argument("a " + class_name + " model takes no build_config");
      }
      auto [shape, dtype] = read_input_spec(*build, "build_config");
      model->build(shape, dtype);
    }
  } catch (const AllocationError&) {
    throw;  // not a bad file but a bug in the limits: let it show as what it is
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::runtime_error& e) {
    if (std::string_view(e.what()).find(source) != std::string_view::npos) throw;
    fail(source, e.what());
  } catch (const std::exception& e) {
    fail(source, e.what());
  }
  if (!model->built()) fail(source, "the model has no input shape (it was saved before being built)");
  auto staged = match_weights(*model, saved.weights, source);
  if (saved.compile) {
    try {
      restore_compile_state(*model, {*saved.compile, saved.optimizer_slots});
    } catch (const std::exception& e) {
      fail(source, std::string("compile state: ") + e.what());
    }
  }
  // The model is new, so staging is the model itself: nothing outside it has changed if any
  // check above failed.
  for (const auto& [v, t] : staged) v.value().copy_from(*t);
  return model;
}

std::shared_ptr<Model> load_model_from_bytes(std::string_view bytes, const std::string& source) {
  return build_saved_model(parse_saved_model(bytes, source), source);
}

std::shared_ptr<Model> load_model(const std::string& path) {
  std::string bytes;
  try {
    bytes = base::read_file(path);
  } catch (const std::exception&) {
    throw std::runtime_error("saved model '" + path + "' cannot be opened");
  }
  return load_model_from_bytes(bytes, path);
}

}  // namespace kiln::nn
