// Fuzz target for the graph loader (graph/graph_io.h). An accepted graph must re-serialise to
// the same bytes (version 1 has one encoding) and, fed a small input, run or fail cleanly: a
// hostile graph reaches the ops with hostile attributes. The loader validated every node, so
// Graph::run may fail only on data (a label out of range), and makes the declared types.
#include <cstdio>

#include "graph/graph_io.h"
#include "tests/fuzz/fuzz_support.h"

int kiln_fuzz_graph(const uint8_t* data, size_t size) {
  using namespace kiln;
  const char* const kFormat = "graph";
  const std::string source = "fuzz-input.kgraph";
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  graph::Graph g;
  if (!fuzz::accepts(kFormat, source, [&] { g = graph::parse_graph(bytes, source); })) return 0;
  for (const graph::Constant& c : g.constants) fuzz::check_tensor(kFormat, c.tensor);
  std::string again;
  try {
    again = graph::serialize_graph(g);
  } catch (const std::exception& e) {
    fuzz::bug(kFormat, std::string("re-serialising an accepted graph failed: ") + e.what());
    return 1;
  }
  if (again != bytes) fuzz::bug(kFormat, "an accepted graph does not re-serialise to the same bytes");
  std::vector<Tensor> feeds;
  for (int i : g.inputs) {
    Shape s = g.values[i].shape;
    for (int64_t& d : s) d = d == graph::kBatch ? 2 : d;
    int64_t n = 1;
    for (int64_t d : s) n = d > 4096 ? 4097 : n * d;
    if (n > 4096) return 1;  // too big to run as a fuzz case
    feeds.push_back(Tensor::zeros(s, g.values[i].dtype));
  }
  std::vector<Tensor> outputs;
  bool ran = fuzz::accepts(kFormat, source, [&] {
    try {
      outputs = g.run(feeds);
    } catch (const std::invalid_argument& e) {
      // parse_graph validated every node's types: what Graph::run rejects, validation must have.
      fuzz::bug(kFormat, std::string("Graph::run rejected a graph that validation accepted: ") + e.what());
      throw std::runtime_error(source + ": " + e.what());
    } catch (const std::exception& e) {
      throw std::runtime_error(source + ": " + e.what());  // ops name the op, not the file
    }
  });
  for (size_t k = 0; ran && k < outputs.size(); ++k) {
    const graph::Value& declared = g.values[g.outputs[k]];
    if (!graph::accepts(declared, outputs[k])) {
      fuzz::bug(kFormat, "output '" + declared.name + "' is declared " + graph::value_type(declared) +
                             " but Graph::run made " + outputs[k].describe());
    }
  }
  return 1;
}
