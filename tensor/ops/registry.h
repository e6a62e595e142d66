#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tensor/ops/attrs.h"
#include "tensor/tensor.h"

namespace kiln::ops {

// One registered op kind: what the tape records, what a Graph node names, and how to run it
// again from its attributes (Graph::run, passes, exporters).
struct OpDef {
  std::string name;
  int min_inputs = 1;
  int max_inputs = 1;  // -1: any number
  bool differentiable = true;
  std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs, const Attrs& attrs)> run;
};

// Every op, in one table (tensor/ops/op_table.cc).
const std::vector<OpDef>& registered_ops();
// Throws std::invalid_argument naming the op when it is not registered.
const OpDef& op_def(const std::string& name);
// Runs a registered op, checking the input count first.
std::vector<Tensor> run_op(const Attrs& call, const std::vector<Tensor>& inputs);

}  // namespace kiln::ops
