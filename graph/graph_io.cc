#include "graph/graph_io.h"

#include <stdexcept>

#include "base/byte_io.h"
#include "base/files.h"

namespace kiln::graph {
namespace {

constexpr base::FileFormat kFormat{"KILNGRPH", "graph", 1};
constexpr int kMaxRank = 8;
enum Tag : uint8_t { kInt = 0, kFloat = 1, kString = 2, kInts = 3, kFloats = 4 };

// A u32 count, then that many u32 value indices.
void write_indices(base::ByteWriter& w, const std::vector<int>& ids) {
  w.put<uint32_t>(static_cast<uint32_t>(ids.size()));
  for (int i : ids) w.put<uint32_t>(static_cast<uint32_t>(i));
}

// Each index must name one of the `limit` values.
std::vector<int> read_indices(base::ByteReader& r, const char* what, size_t limit) {
  uint32_t n = r.count(what, 4);
  std::vector<int> out;
  for (uint32_t k = 0; k < n; ++k) {
    uint32_t i = r.get<uint32_t>(what);
    if (i >= limit) r.fail(std::string(what) + " index " + std::to_string(i) + " is out of range");
    out.push_back(static_cast<int>(i));
  }
  return out;
}

void write_attr(base::ByteWriter& w, const ops::AttrValue& v) {
  if (const int64_t* i = std::get_if<int64_t>(&v)) {
    w.put<uint8_t>(kInt);
    w.put<int64_t>(*i);
  } else if (const double* d = std::get_if<double>(&v)) {
    w.put<uint8_t>(kFloat);
    w.put<double>(*d);
  } else if (const std::string* s = std::get_if<std::string>(&v)) {
    w.put<uint8_t>(kString);
    w.str(*s);
  } else if (const auto* is = std::get_if<std::vector<int64_t>>(&v)) {
    w.put<uint8_t>(kInts);
    w.put<uint32_t>(static_cast<uint32_t>(is->size()));
    for (int64_t x : *is) w.put<int64_t>(x);
  } else {
    const auto& ds = std::get<std::vector<double>>(v);
    w.put<uint8_t>(kFloats);
    w.put<uint32_t>(static_cast<uint32_t>(ds.size()));
    for (double x : ds) w.put<double>(x);
  }
}

ops::AttrValue read_attr(base::ByteReader& r) {
  uint8_t tag = r.get<uint8_t>("attribute tag");
  switch (tag) {
    case kInt: return r.get<int64_t>("int attribute");
    case kFloat: return r.get<double>("float attribute");
    case kString: return r.str("string attribute");
    case kInts: {
      uint32_t n = r.count("ints", 8);
      std::vector<int64_t> v(n);
      for (auto& x : v) x = r.get<int64_t>("ints attribute");
      return v;
    }
    case kFloats: {
      uint32_t n = r.count("floats", 8);
      std::vector<double> v(n);
      for (auto& x : v) x = r.get<double>("floats attribute");
      return v;
    }
  }
  r.fail("unknown attribute tag " + std::to_string(tag));
}

}  // namespace

std::string serialize_graph(const Graph& g) {
  g.validate();
  base::ByteWriter w = base::start_file(kFormat);
  w.put<uint32_t>(static_cast<uint32_t>(g.values.size()));
  for (const Value& v : g.values) {
    if (v.shape.size() > kMaxRank) {  // refused here, or the file could not be read back
      throw std::invalid_argument("save_graph: value '" + v.name + "' has rank " + std::to_string(v.shape.size()) +
                                  " " + shape_str(v.shape) + "; graph files hold ranks of at most " +
                                  std::to_string(kMaxRank));
    }
    w.str(v.name);
    w.put<uint8_t>(static_cast<uint8_t>(v.dtype));
    w.put<uint8_t>(static_cast<uint8_t>(v.shape.size()));
    for (int64_t d : v.shape) w.put<int64_t>(d);
  }
  write_indices(w, g.inputs);
  write_indices(w, g.outputs);
  w.put<uint32_t>(static_cast<uint32_t>(g.constants.size()));
  for (const Constant& c : g.constants) {
    Tensor t = c.tensor.is_contiguous() ? c.tensor : c.tensor.clone_detached();
    w.put<uint32_t>(static_cast<uint32_t>(c.value));
    w.put<uint8_t>(c.is_variable ? 1 : 0);
    w.put<uint64_t>(t.nbytes());
    w.bytes(t.raw_data(), t.nbytes());
  }
  w.put<uint32_t>(static_cast<uint32_t>(g.nodes.size()));
  for (const Node& n : g.nodes) {
    w.str(n.call.op());
    w.put<uint32_t>(static_cast<uint32_t>(n.call.items().size()));
    for (const auto& [name, value] : n.call.items()) {
      w.str(name);
      write_attr(w, value);
    }
    write_indices(w, n.inputs);
    write_indices(w, n.outputs);
  }
  return w.finish_with_crc();
}

void save_graph(const Graph& graph, const std::string& path) { base::write_file_atomically(path, serialize_graph(graph)); }

Graph load_graph(const std::string& path) {
  std::string bytes;
  try {
    bytes = base::read_file(path);
  } catch (const std::exception&) {
    throw std::runtime_error("graph '" + path + "' cannot be opened");
  }
  return parse_graph(bytes, path);
}

Graph parse_graph(std::string_view bytes, const std::string& source) {
  base::ByteReader r = base::open_file(bytes, kFormat, source);
  Graph g;
  uint32_t nvalues = r.count("values", 4 + 1 + 1);
  for (uint32_t k = 0; k < nvalues; ++k) {
    Value v;
    v.name = r.str("value name");
    uint8_t dt = r.get<uint8_t>("dtype");
    if (dt > static_cast<uint8_t>(DType::s32)) r.fail("value '" + v.name + "' has unknown dtype " + std::to_string(dt));
    v.dtype = static_cast<DType>(dt);
    uint8_t rank = r.get<uint8_t>("rank");
    if (rank > kMaxRank) r.fail("value '" + v.name + "' has rank " + std::to_string(rank));
    for (int d = 0; d < rank; ++d) {
      int64_t dim = r.get<int64_t>("dimension");
      if (dim < 0 && !(dim == kBatch && d == 0)) r.fail("value '" + v.name + "' has dimension " + std::to_string(dim));
      v.shape.push_back(dim);
    }
    g.values.push_back(std::move(v));
  }
  g.inputs = read_indices(r, "inputs", nvalues);
  for (int i : g.inputs) {
    // A fixed batch of 0 can never be fed (no sample has zero rows), and the planner would
    // size its buffers from it: refuse it here, naming the input.
    const Value& v = g.values[i];
    if (!v.shape.empty() && v.shape[0] == 0) {
      r.fail("input '" + v.name + "' has a fixed batch dimension of 0 (" + value_type(v) + ")");
    }
  }
  g.outputs = read_indices(r, "outputs", nvalues);
  uint32_t nconst = r.count("constants", 4 + 1 + 8);
  for (uint32_t k = 0; k < nconst; ++k) {
    Constant c;
    uint32_t v = r.get<uint32_t>("constant value");
    if (v >= nvalues) r.fail("constant index " + std::to_string(v) + " is out of range");
    c.value = static_cast<int>(v);
    uint8_t is_var = r.get<uint8_t>("constant kind");
    if (is_var > 1) r.fail("constant kind " + std::to_string(is_var));
    c.is_variable = is_var == 1;
    const Value& val = g.values[v];
    if (!val.shape.empty() && val.shape[0] == kBatch) r.fail("constant '" + val.name + "' has a batch dimension");
    uint64_t want;
    try {
      want = checked_nbytes(val.shape, dtype_size(val.dtype), "constant '" + val.name + "'");
    } catch (const std::invalid_argument& e) {
      r.fail(e.what());
    }
    uint64_t n = r.get<uint64_t>("constant byte count");
    if (n != want) r.fail("constant '" + val.name + "' has " + std::to_string(n) + " bytes, its shape needs " + std::to_string(want));
    std::string_view data = r.take(n, "constant data");  // bounded by the bytes present before allocating
    c.tensor = Tensor::from_bytes(data.data(), val.shape, val.dtype);
    g.constants.push_back(std::move(c));
  }
  uint32_t nnodes = r.count("nodes", 4 + 4 + 4 + 4);
  for (uint32_t k = 0; k < nnodes; ++k) {
    Node n;
    n.call.set_op(r.str("op name"));
    uint32_t nattrs = r.count("attributes", 4 + 1);
    for (uint32_t a = 0; a < nattrs; ++a) {
      std::string name = r.str("attribute name");
      if (n.call.has(name)) r.fail("node " + std::to_string(k) + " repeats attribute '" + name + "'");
      n.call.set(name, read_attr(r));
    }
    n.inputs = read_indices(r, "node inputs", nvalues);
    n.outputs = read_indices(r, "node outputs", nvalues);
    g.nodes.push_back(std::move(n));
  }
  r.expect_end("the last node");
  try {
    g.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("graph '" + source + "' is invalid: " + e.what());
  }
  return g;
}

}  // namespace kiln::graph
