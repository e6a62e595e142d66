#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tensor/ops/attrs.h"
#include "tensor/ops/op_kind.h"
#include "tensor/tensor.h"

namespace kiln::ops {

// One registered op kind (a row of op_list.h): what the tape records, what a Graph node names,
// and how to run it again from its attributes (Graph::run, the inference plan's eager steps,
// passes, exporters). `run` parses the typed attributes (op_attrs.h) and calls the eager op,
// which records its backward beside its forward (the gradient).
//
// Per-op shape and dtype inference belongs in this row, next to `run`: an
// `infer(input types, attrs) -> output types` for every kind, made in op_table.cc's switch
// as `run` is, which Graph::validate would call for each node.
struct OpDef {
  OpKind kind;
  std::string name;
  int min_inputs = 1;
  int max_inputs = 1;  // -1: any number
  bool differentiable = true;
  std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs, const Attrs& attrs)> run;
};

// Every op, in one table (tensor/ops/op_table.cc), in op_list.h's order.
const std::vector<OpDef>& registered_ops();
const OpDef& op_def(OpKind kind);
// Throws std::invalid_argument naming the op when it is not registered.
const OpDef& op_def(const std::string& name);
// Throws std::invalid_argument naming the op when the input count is outside its arity.
void check_arity(const OpDef& def, int inputs);
// Runs a registered op, checking the input count first.
std::vector<Tensor> run_op(const Attrs& call, const std::vector<Tensor>& inputs);

}  // namespace kiln::ops
