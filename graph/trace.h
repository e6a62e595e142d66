#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"
#include "tensor/tensor.h"

namespace kiln::nn {
class Model;
}

namespace kiln::graph {

using TensorFunction = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;

// Runs fn once on sample inputs and records every op it calls into a Graph. Tensors the
// function reads that are listed in `variables` become constants referring to them by name;
// any other tensor it reads becomes a literal constant. Dimension 0 of the inputs is the
// batch: values computed from them keep it symbolic, and reshapes that spell out the traced
// batch size are recorded as "copy dimension 0". Only what reaches the outputs is kept.
// When the function mixes the batch with sizes of its own (a constant as long as the sample
// batch, a permute or slice across the batch), the symbolic graph does not validate, and
// the graph is returned for the sample's batch size instead (its inputs say so).
Graph trace(const TensorFunction& fn, const std::vector<Tensor>& sample_inputs,
            const std::vector<std::pair<std::string, Tensor>>& variables = {});

// One inference forward (training = false) of a Sequential, functional or subclassed model;
// its variables become named constants.
Graph trace(nn::Model& model, const std::vector<Tensor>& sample_inputs);
Graph trace(nn::Model& model, const Tensor& sample_input);

}  // namespace kiln::graph
