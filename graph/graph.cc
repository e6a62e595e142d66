#include "graph/graph.h"

#include <sstream>
#include <stdexcept>

#include "tensor/ops/op_attrs.h"
#include "tensor/ops/registry.h"

namespace kiln::graph {
static_assert(kBatch == ops::kSymbolicBatch, "a graph's batch is what shape inference calls the symbolic batch");

namespace {
ops::ValueType type_of(const Value& v) { return {v.dtype, v.shape}; }
std::string inputs_string(const std::vector<ops::ValueType>& types) {
  std::string s;
  for (size_t i = 0; i < types.size(); ++i) s += (i ? ", " : "") + ops::describe(types[i]);
  return s;
}
}  // namespace

std::string value_type(const Value& v) {
  std::string s = std::string(dtype_name(v.dtype)) + "[";
  for (size_t i = 0; i < v.shape.size(); ++i) {
    s += (i ? ", " : "") + (v.shape[i] == kBatch ? std::string("N") : std::to_string(v.shape[i]));
  }
  return s + "]";
}

bool accepts(const Value& v, const Tensor& t) {
  if (!t.defined() || t.dtype() != v.dtype || t.ndim() != static_cast<int>(v.shape.size())) return false;
  for (size_t i = 0; i < v.shape.size(); ++i) {
    if (v.shape[i] != kBatch && v.shape[i] != t.shape()[i]) return false;
  }
  return true;
}

const Constant* Graph::constant_for(int value) const {
  for (const Constant& c : constants) {
    if (c.value == value) return &c;
  }
  return nullptr;
}

void Graph::validate() const {
  const int n = static_cast<int>(values.size());
  std::vector<int> defined(n, 0);
  auto check_index = [&](int i, const std::string& where) {
    if (i < 0 || i >= n) {
      throw std::invalid_argument("graph: " + where + " refers to value " + std::to_string(i) + " of " +
                                  std::to_string(n));
    }
  };
  auto define = [&](int i, const std::string& where) {
    check_index(i, where);
    if (defined[i]++) throw std::invalid_argument("graph: value '" + values[i].name + "' is defined twice (" + where + ")");
  };
  for (const Value& v : values) {
    try {
      ops::check_value_type(type_of(v), "value '" + v.name + "'");
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("graph: ") + e.what());
    }
  }
  for (int i : inputs) define(i, "an input");
  for (const Constant& c : constants) {
    define(c.value, "a constant");
    if (!c.tensor.defined()) throw std::invalid_argument("graph: constant '" + values[c.value].name + "' has no tensor");
    if (c.tensor.shape() != values[c.value].shape || c.tensor.dtype() != values[c.value].dtype) {
      throw std::invalid_argument("graph: constant '" + values[c.value].name + "' holds " + c.tensor.describe() +
                                  " but is declared " + value_type(values[c.value]));
    }
  }
  for (size_t k = 0; k < nodes.size(); ++k) {
    const Node& node = nodes[k];
    std::string where = "node " + std::to_string(k) + " (" + node.call.op() + ")";
    const ops::OpDef& def = ops::op_def(node.call.op());
    int count = static_cast<int>(node.inputs.size());
    if (count < def.min_inputs || (def.max_inputs >= 0 && count > def.max_inputs)) {
      throw std::invalid_argument("graph: " + where + " has " + std::to_string(count) + " inputs");
    }
    try {
      ops::check_attrs(node.call);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("graph: " + where + ": " + e.what());
    }
    std::vector<ops::ValueType> input_types;
    for (int i : node.inputs) {
      check_index(i, where);
      if (!defined[i]) throw std::invalid_argument("graph: " + where + " uses '" + values[i].name + "' before it is computed");
      input_types.push_back(type_of(values[i]));
    }
    if (node.outputs.empty()) throw std::invalid_argument("graph: " + where + " has no outputs");
    for (int o : node.outputs) define(o, where);
    // What the op makes from its inputs' declared types, checked as the eager op checks: a
    // graph that Graph::run would reject stops here, before any pass or plan sees it.
    std::vector<ops::ValueType> made;
    try {
      made = ops::infer_op(node.call, input_types);
    } catch (const std::logic_error& e) {  // invalid_argument, and out_of_range for an axis
      throw std::invalid_argument("graph: " + where + ": " + e.what());
    } catch (const std::overflow_error& e) {
      throw std::invalid_argument("graph: " + where + ": " + e.what());
    }
    if (made.size() != node.outputs.size()) {
      throw std::invalid_argument("graph: " + where + " makes " + std::to_string(made.size()) + " outputs, the node lists " +
                                  std::to_string(node.outputs.size()));
    }
    for (size_t k = 0; k < made.size(); ++k) {
      const Value& declared = values[node.outputs[k]];
      if (type_of(declared) != made[k]) {
        throw std::invalid_argument("graph: " + where + " output '" + declared.name + "' is declared " +
                                    value_type(declared) + " but the op makes " + ops::describe(made[k]) +
                                    " from its inputs " + inputs_string(input_types));
      }
    }
  }
  if (outputs.empty()) throw std::invalid_argument("graph: no outputs");
  for (int o : outputs) {
    check_index(o, "an output");
    if (!defined[o]) throw std::invalid_argument("graph: output '" + values[o].name + "' is never computed");
  }
}

std::vector<Tensor> Graph::run(const std::vector<Tensor>& feeds) const {
  if (feeds.size() != inputs.size()) {
    throw std::invalid_argument("Graph::run: the graph takes " + std::to_string(inputs.size()) + " inputs, got " +
                                std::to_string(feeds.size()));
  }
  std::vector<Tensor> env(values.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& want = values[inputs[i]];
    if (!accepts(want, feeds[i])) {
      throw std::invalid_argument("Graph::run: input '" + want.name + "' expects " + value_type(want) + ", got " +
                                  (feeds[i].defined() ? feeds[i].describe() : std::string("an undefined tensor")));
    }
    env[inputs[i]] = feeds[i];
  }
  for (const Constant& c : constants) env[c.value] = c.tensor;
  for (const Node& node : nodes) {
    std::vector<Tensor> args;
    args.reserve(node.inputs.size());
    for (int i : node.inputs) args.push_back(env[i]);
    std::vector<Tensor> results = ops::run_op(node.call, args);
    if (results.size() != node.outputs.size()) {
      throw std::logic_error("Graph::run: " + node.call.op() + " returned " + std::to_string(results.size()) +
                             " outputs, the graph expects " + std::to_string(node.outputs.size()));
    }
    for (size_t k = 0; k < results.size(); ++k) env[node.outputs[k]] = results[k];
  }
  std::vector<Tensor> out;
  for (int o : outputs) out.push_back(env[o]);
  return out;
}

Tensor Graph::run(const Tensor& input) const {
  std::vector<Tensor> out = run(std::vector<Tensor>{input});
  if (out.size() != 1) throw std::invalid_argument("Graph::run: the graph has several outputs; pass a vector");
  return out[0];
}

std::string Graph::to_string() const {
  std::ostringstream os;
  auto names = [&](const std::vector<int>& ids) {
    std::string s;
    for (size_t k = 0; k < ids.size(); ++k) s += (k ? ", " : "") + values[ids[k]].name;
    return s;
  };
  os << "inputs:\n";
  for (int i : inputs) os << "  " << values[i].name << " : " << value_type(values[i]) << "\n";
  if (!constants.empty()) os << "constants:\n";
  for (const Constant& c : constants) {
    os << "  " << values[c.value].name << " : " << value_type(values[c.value])
       << (c.is_variable ? "  (variable)" : "  (literal)") << "\n";
  }
  os << "nodes:\n";
  for (const Node& node : nodes) {
    std::string lhs = names(node.outputs);
    os << "  " << lhs << " = " << node.call.op() << "(" << names(node.inputs) << ")";
    if (!node.call.items().empty()) os << " {" << node.call.to_string() << "}";
    os << " : ";
    for (size_t k = 0; k < node.outputs.size(); ++k) os << (k ? ", " : "") << value_type(values[node.outputs[k]]);
    os << "\n";
  }
  os << "outputs: " << names(outputs) << "\n";
  return os.str();
}

}  // namespace kiln::graph
