#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/ops/attrs.h"
#include "tensor/tensor.h"

namespace kiln::graph {

// A tensor flowing through a Graph. Dimension 0 of a value computed from the inputs is the
// batch: kBatch there means "whatever batch the inputs have".
constexpr int64_t kBatch = -1;

struct Value {
  std::string name;  // "x", "%3", or a variable's name for a constant
  Shape shape;       // kBatch marks the symbolic batch dimension
  DType dtype = DType::f32;
};

// A value known before the graph runs: a model variable (referred to by its name, bound to
// the variable's live tensor after trace) or a literal the traced code created.
struct Constant {
  int value = -1;            // index into Graph::values
  bool is_variable = false;  // names a model variable (Value::name)
  Tensor tensor;             // the variable's live value, or the literal
};

struct Node {
  ops::Attrs call;  // call.op() is the registered op kind
  std::vector<int> inputs;
  std::vector<int> outputs;
};

// "u8[N, 28, 28, 1]": a value's dtype and shape, N for the symbolic batch.
std::string value_type(const Value& v);
// Whether a tensor can feed the value: same dtype and rank, every dimension equal but the batch.
bool accepts(const Value& v, const Tensor& t);

// One inference forward as data: nodes in execution order over values; what trace() returns.
// Passes (runtime_export/, quant/) are functions Graph -> Graph.
class Graph {
 public:
  std::vector<Value> values;
  std::vector<Constant> constants;
  std::vector<int> inputs, outputs;  // indices into values
  std::vector<Node> nodes;           // topological: every input is computed before use

  // Runs the nodes with the eager ops. Inputs must match the graph inputs' dtypes and shapes
  // (any batch size); throws naming the input otherwise.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs) const;
  Tensor run(const Tensor& input) const;

  // A readable table: inputs, constants, then one line per node.
  std::string to_string() const;

  // Throws std::invalid_argument naming what is wrong: indices out of range, a value used
  // before it is computed or computed twice, an unknown op, a constant without a tensor, a
  // declared shape with a negative or overflowing dimension, and for each node (as "graph:
  // node K (op) ..."), what its op would reject (attributes, input dtypes and shapes:
  // OpDef::infer) or a declared output dtype or shape other than the op makes from its inputs.
  // The loaders, trace, ONNX import, InferenceModel and every pass run it, so Graph::run,
  // passes and the inference plan see only graphs whose every node type-checks.
  void validate() const;

  const Constant* constant_for(int value) const;
};

}  // namespace kiln::graph
