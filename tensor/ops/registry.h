#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tensor/ops/attrs.h"
#include "tensor/ops/op_kind.h"
#include "tensor/ops/value_type.h"
#include "tensor/tensor.h"

namespace kiln::ops {

// One registered op kind (a row of op_list.h): what the tape records, what a Graph node names,
// and how to run it again from its attributes (Graph::run, the inference plan's eager steps,
// passes, exporters). `run` parses the typed attributes (op_attrs.h) and calls the eager op,
// which records its backward beside its forward (the gradient).
// `infer` gives the output dtypes and shapes from the inputs' and the attributes, checking
// what `run` would check and throwing what it would throw (tensor/ops/op_infer.cc, one case
// per kind); Graph::validate runs it for every node.
using InferFn = std::function<std::vector<ValueType>(const std::vector<ValueType>& inputs, const Attrs& attrs)>;

struct OpDef {
  OpKind kind;
  std::string name;
  int min_inputs = 1;
  int max_inputs = 1;  // -1: any number
  bool differentiable = true;
  std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs, const Attrs& attrs)> run;
  InferFn infer;
};

// Every op, in one table (tensor/ops/op_table.cc), in op_list.h's order.
const std::vector<OpDef>& registered_ops();
const OpDef& op_def(OpKind kind);
// Throws std::invalid_argument naming the op when it is not registered.
const OpDef& op_def(const std::string& name);
// Throws std::invalid_argument naming the op when the input count is outside its arity.
void check_arity(const OpDef& def, int inputs);
// Shape and dtype inference of a registered op: checks the input count and every input's
// shape (dimension 0 may be kSymbolicBatch), then the op's own checks; throws
// std::invalid_argument (std::out_of_range for an axis) naming the op and what is wrong.
std::vector<ValueType> infer_op(const Attrs& call, const std::vector<ValueType>& inputs);
// The infer function of one kind (op_infer.cc), for op_table.cc's rows.
InferFn infer_function_of(OpKind kind);
// Runs a registered op, checking the input count first.
std::vector<Tensor> run_op(const Attrs& call, const std::vector<Tensor>& inputs);

}  // namespace kiln::ops
