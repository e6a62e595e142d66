#include "graph/trace.h"

#include <stdexcept>
#include <unordered_map>

#include "graph/passes/dead_code.h"
#include "tensor/ops/recorder.h"
#include "nn/model.h"
#include "tensor/ops/registry.h"

namespace kiln::graph {
namespace {

class Tracer : public autograd::OpObserver {
 public:
  Tracer(const std::vector<Tensor>& samples, const std::vector<std::pair<std::string, Tensor>>& variables) {
    for (const auto& [name, t] : variables) variables_[t.id()] = {name, t};
    for (size_t i = 0; i < samples.size(); ++i) {
      const Tensor& s = samples[i];
      if (!s.defined() || s.ndim() == 0) {
        throw std::invalid_argument("trace: sample input " + std::to_string(i) + " needs a batch dimension");
      }
      if (i == 0) batch_ = s.shape()[0];
      if (s.shape()[0] != batch_) {
        throw std::invalid_argument("trace: sample inputs have different batch sizes: " + samples[0].describe() +
                                    " and " + s.describe());
      }
      int v = add_value("input_" + std::to_string(i), s, /*batched=*/true);
      graph_.inputs.push_back(v);
    }
  }

  void on_op(const ops::Attrs& call, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) override {
    call.kind();  // every recorded op must be registered, or the graph could not run
    Node node{call, {}, {}};
    bool batched = false;
    for (const Tensor& t : inputs) {
      if (!t.defined()) throw std::logic_error("trace: op " + call.op() + " recorded an undefined input");
      int v = value_of(t);
      node.inputs.push_back(v);
      batched = batched || batched_[v];
    }
    if (call.is(ops::OpKind::reshape) && batched) node.call = symbolic_reshape(call, inputs[0]);
    for (const Tensor& t : outputs) node.outputs.push_back(add_value("%" + std::to_string(next_name_++), t, batched));
    graph_.nodes.push_back(std::move(node));
  }

  Graph finish(const std::vector<Tensor>& outputs) {
    for (const Tensor& t : outputs) {
      if (!t.defined()) throw std::invalid_argument("trace: the function returned an undefined tensor");
      graph_.outputs.push_back(value_of(t));
    }
    Graph g = eliminate_dead_code(graph_);
    try {
      g.validate();
      return g;
    } catch (const std::invalid_argument& symbolic) {
      // The traced code mixed the batch with a size of its own (a constant of the sample's
      // batch, a slice or reshape across the batch): the graph holds for the sample's batch
      // only, and says so in its inputs' shapes.
      Graph fixed = with_fixed_batch(g);
      try {
        fixed.validate();
      } catch (const std::invalid_argument&) {
        throw symbolic;
      }
      return fixed;
    }
  }

 private:
  int add_value(const std::string& name, const Tensor& t, bool batched) {
    Shape shape = t.shape();
    if (batched && !shape.empty() && shape[0] == batch_) shape[0] = kBatch;
    graph_.values.push_back({name, shape, t.dtype()});
    int v = static_cast<int>(graph_.values.size()) - 1;
    ids_[t.id()] = v;
    batched_.push_back(batched && !shape.empty() && shape[0] == kBatch);
    return v;
  }

  // A tensor the traced code read without computing it: a named variable, or a literal.
  int value_of(const Tensor& t) {
    auto it = ids_.find(t.id());
    if (it != ids_.end()) return it->second;
    auto var = variables_.find(t.id());
    bool is_variable = var != variables_.end();
    std::string name = is_variable ? var->second.first : "const_" + std::to_string(next_const_++);
    int v = add_value(name, t, /*batched=*/false);
    // Literals are copied: the traced code may reuse their memory after the trace.
    graph_.constants.push_back({v, is_variable, is_variable ? var->second.second : t.clone_detached()});
    return v;
  }

  Graph with_fixed_batch(Graph g) const {
    for (Value& v : g.values) {
      if (!v.shape.empty() && v.shape[0] == kBatch) v.shape[0] = batch_;
    }
    return g;
  }

  ops::Attrs symbolic_reshape(const ops::Attrs& call, const Tensor& input) const {
    std::vector<int64_t> shape = call.get_ints("shape");
    if (!shape.empty() && shape[0] == batch_ && input.ndim() > 0 && input.shape()[0] == batch_) {
      shape[0] = 0;  // ONNX's convention: 0 copies the input's dimension
    }
    ops::Attrs out = call;
    out.set("shape", shape);
    return out;
  }

  Graph graph_;
  int64_t batch_ = 0;
  int next_name_ = 0, next_const_ = 0;
  std::unordered_map<uint64_t, int> ids_;
  std::vector<bool> batched_;
  std::unordered_map<uint64_t, std::pair<std::string, Tensor>> variables_;
};

}  // namespace

Graph trace(const TensorFunction& fn, const std::vector<Tensor>& samples,
            const std::vector<std::pair<std::string, Tensor>>& variables) {
  if (samples.empty()) throw std::invalid_argument("trace: needs at least one sample input");
  Tracer tracer(samples, variables);
  std::vector<Tensor> outputs;
  {
    autograd::ObserverScope scope(&tracer);
    outputs = fn(samples);
  }
  return tracer.finish(outputs);
}

Graph trace(nn::Model& model, const std::vector<Tensor>& samples) {
  // Weights are created on the first call; create them outside the trace so that they become
  // named variables, not literals.
  bool unbuilt = model.layers().empty();
  for (const nn::Layer& l : model.layers()) unbuilt = unbuilt || !l->built();
  if (unbuilt) model.call(samples, /*training=*/false);
  std::vector<std::pair<std::string, Tensor>> variables;
  for (const Variable& v : model.variables()) variables.emplace_back(v.name(), v.value());
  return trace([&](const std::vector<Tensor>& xs) { return model.call(xs, /*training=*/false); }, samples,
               variables);
}

Graph trace(nn::Model& model, const Tensor& sample) { return trace(model, std::vector<Tensor>{sample}); }

}  // namespace kiln::graph
