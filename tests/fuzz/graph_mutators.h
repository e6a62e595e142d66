#pragma once
#include <string>

#include "graph/graph.h"
#include "tests/fuzz/mutators.h"

namespace kiln::fuzz {

// One attribute-level edit of a decoded graph, kept structurally valid so that it reaches the
// ops, the passes and the planner: an integer set to an extreme (INT64_MAX, INT64_MIN, 2^62,
// 2^31, -1, 0), an attribute's type changed (int, float, string, ints, floats), a list made
// longer, a float made non-finite or out of range (inf, -inf, NaN, -1, 0, 1e300), a value's
// dimension off by one, or an input's batch fixed. Returns a description ("node 3 (conv2d):
// strides[0] = 9223372036854775807"), empty when the graph offered nothing to edit.
std::string mutate_graph_attributes(graph::Graph& g, Rng& r);

}  // namespace kiln::fuzz
