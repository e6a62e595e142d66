#pragma once
#include <string>

#include "graph/graph.h"

namespace kiln::fuzz {

// The property issue 26 asks of every graph: fed the same input, Graph::run and InferenceModel
// (construction, passes, plan and run together) either both throw a std::exception, or both
// run and give outputs of the same dtypes and shapes whose values agree within tolerance
// (1e-3 of the largest output for float graphs; a quarter of it where the graph holds int8
// data, whose oneDNN kernels may round a tie to the other quantization step). Anything else
// (one path throwing alone, disagreeing output, an exception not derived from std::exception,
// std::bad_alloc) goes to bug("graph", ...) naming `source`.
enum class Agreement {
  both_ran,
  both_threw,
  too_big,  // some value would hold more than 2^18 elements at batch 2: not run
  disagree,
};
Agreement check_run_agreement(const graph::Graph& g, const std::string& source, bool report = true);
// Why the last check_run_agreement on this thread disagreed (empty when it agreed).
const std::string& last_disagreement();

}  // namespace kiln::fuzz
