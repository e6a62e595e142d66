#pragma once
// The ONNX round trip most layer and op tests make.
#include <string>
#include <vector>

#include "graph/graph.h"
#include "tensor/tensor.h"

namespace kiln::testing {

// Exports `g` to ONNX (`name`.onnx in the test's temp folder), checks the file with
// onnx.checker, runs it in ONNX Runtime on `inputs` and imports it back: every output of both
// must be within the tolerance of g.run(inputs). Returns the imported graph, for checks of its
// nodes.
graph::Graph expect_onnx_round_trip(const graph::Graph& g, const std::vector<Tensor>& inputs, const std::string& name,
                                    float ort_tolerance = 1e-4f, float import_tolerance = 1e-5f);

}  // namespace kiln::testing
