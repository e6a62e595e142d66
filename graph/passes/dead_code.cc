#include "graph/passes/dead_code.h"

namespace kiln::graph {

Graph eliminate_dead_code(const Graph& in) {
  std::vector<bool> live(in.values.size(), false);
  for (int o : in.outputs) live[o] = true;
  std::vector<bool> keep(in.nodes.size(), false);
  for (size_t k = in.nodes.size(); k-- > 0;) {
    for (int o : in.nodes[k].outputs) keep[k] = keep[k] || live[o];
    if (keep[k]) {
      for (int i : in.nodes[k].inputs) live[i] = true;
    }
  }
  for (int i : in.inputs) live[i] = true;  // inputs stay, used or not, so callers feed the same list
  // Renumber the surviving values densely.
  std::vector<int> remap(in.values.size(), -1);
  Graph out;
  for (size_t v = 0; v < in.values.size(); ++v) {
    if (!live[v]) continue;
    remap[v] = static_cast<int>(out.values.size());
    out.values.push_back(in.values[v]);
  }
  auto map_all = [&](const std::vector<int>& ids) {
    std::vector<int> r;
    for (int i : ids) r.push_back(remap[i]);
    return r;
  };
  out.inputs = map_all(in.inputs);
  out.outputs = map_all(in.outputs);
  for (const Constant& c : in.constants) {
    if (live[c.value]) out.constants.push_back({remap[c.value], c.is_variable, c.tensor});
  }
  for (size_t k = 0; k < in.nodes.size(); ++k) {
    if (!keep[k]) continue;
    Node n = in.nodes[k];
    n.inputs = map_all(n.inputs);
    for (int& o : n.outputs) o = remap[o] >= 0 ? remap[o] : -1;
    // An unused secondary output of a kept node still needs a value to land in.
    for (size_t j = 0; j < n.outputs.size(); ++j) {
      if (n.outputs[j] < 0) {
        out.values.push_back(in.values[in.nodes[k].outputs[j]]);
        n.outputs[j] = static_cast<int>(out.values.size()) - 1;
      }
    }
    out.nodes.push_back(std::move(n));
  }
  return out;
}

}  // namespace kiln::graph
