#include "tests/fuzz/graph_mutators.h"

#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>

namespace kiln::fuzz {
namespace {

int64_t extreme_int(Rng& r) {
  static const int64_t kValues[] = {INT64_MAX, INT64_MIN, int64_t{1} << 62, int64_t{1} << 31, (int64_t{1} << 31) - 1,
                                    int64_t{1} << 32, -1, 0, 1, 2, 255, 256, -129};
  return kValues[r.below(std::size(kValues))];
}

double odd_float(Rng& r) {
  static const double kValues[] = {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                                   std::nan(""), -1.0, 0.0, 1e300, 1e-300, -0.0, 1e-45};
  return kValues[r.below(std::size(kValues))];
}

ops::AttrValue other_type(const ops::AttrValue& v, Rng& r) {
  switch ((v.index() + 1 + r.below(4)) % 5) {
    case 0: return int64_t{1};
    case 1: return 1.0;
    case 2: return std::string("same");
    case 3: return std::vector<int64_t>{1, 1};
    default: return std::vector<double>{1.0};
  }
}

std::string edit_attribute(ops::AttrValue& v, Rng& r) {
  const int kind = static_cast<int>(r.below(4));
  if (kind == 0) {
    v = other_type(v, r);
    return "type changed to " + ops::attr_value_string(v);
  }
  if (auto* i = std::get_if<int64_t>(&v)) {
    *i = extreme_int(r);
  } else if (auto* d = std::get_if<double>(&v)) {
    *d = odd_float(r);
  } else if (auto* is = std::get_if<std::vector<int64_t>>(&v)) {
    if (kind == 1 || is->empty()) {
      is->push_back(is->empty() ? 1 : is->back());  // a list made longer
    } else {
      (*is)[r.below(is->size())] = kind == 2 ? extreme_int(r) : (*is)[r.below(is->size())] + (r.chance(50) ? 1 : -1);
    }
  } else if (auto* ds = std::get_if<std::vector<double>>(&v)) {
    if (kind == 1 || ds->empty()) {
      ds->push_back(ds->empty() ? 1.0 : ds->back());
    } else {
      (*ds)[r.below(ds->size())] = odd_float(r);
    }
  } else {
    v = std::string(r.chance(50) ? "" : "bogus");
  }
  return "= " + ops::attr_value_string(v);
}

}  // namespace

std::string mutate_graph_attributes(graph::Graph& g, Rng& r) {
  const int kind = static_cast<int>(r.below(10));
  if (kind == 0) {  // a dim of a computed value (or an input) off by one
    std::vector<int> candidates;
    for (size_t v = 0; v < g.values.size(); ++v) {
      if (!g.constant_for(static_cast<int>(v)) && !g.values[v].shape.empty()) candidates.push_back(static_cast<int>(v));
    }
    if (candidates.empty()) return "";
    graph::Value& v = g.values[candidates[r.below(candidates.size())]];
    size_t d = r.below(v.shape.size());
    if (v.shape[d] == graph::kBatch) {
      v.shape[d] = r.chance(50) ? 0 : 1;  // the batch fixed, to 0 or 1
    } else {
      v.shape[d] += v.shape[d] > 0 && r.chance(50) ? -1 : 1;
    }
    return "value '" + v.name + "' declared " + graph::value_type(v);
  }
  if (kind == 1) {  // a value's declared dtype
    graph::Value& v = g.values[r.below(g.values.size())];
    if (g.constant_for(static_cast<int>(&v - g.values.data()))) return "";
    static const DType kTypes[] = {DType::f32, DType::bf16, DType::s8, DType::u8, DType::s32};
    v.dtype = kTypes[r.below(std::size(kTypes))];
    return "value '" + v.name + "' declared " + graph::value_type(v);
  }
  std::vector<int> with_attrs;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    if (!g.nodes[k].call.items().empty()) with_attrs.push_back(static_cast<int>(k));
  }
  if (with_attrs.empty()) return "";
  const int k = with_attrs[r.below(with_attrs.size())];
  graph::Node& n = g.nodes[k];
  const auto& items = n.call.items();
  const auto& [name, value] = items[r.below(items.size())];
  ops::AttrValue edited = value;
  std::string what = edit_attribute(edited, r);
  const std::string attr = name;
  n.call.set(attr, edited);
  return "node " + std::to_string(k) + " (" + n.call.op() + "): " + attr + " " + what;
}

}  // namespace kiln::fuzz
