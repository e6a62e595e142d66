#include "graph/graph_io.h"

#include <zlib.h>

#include <cstring>
#include <stdexcept>

#include "data/atomic_file.h"
#include "tensor/ops/quantized.h"

namespace kiln::graph {
namespace {

constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'G', 'R', 'P', 'H'};
constexpr uint32_t kVersion = 1;
constexpr int kMaxRank = 8;
enum Tag : uint8_t { kInt = 0, kFloat = 1, kString = 2, kInts = 3, kFloats = 4 };

class Writer {
 public:
  template <typename T>
  void put(T v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void str(const std::string& s) {
    put<uint32_t>(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  void indices(const std::vector<int>& ids) {
    put<uint32_t>(static_cast<uint32_t>(ids.size()));
    for (int i : ids) put<uint32_t>(static_cast<uint32_t>(i));
  }
  void bytes(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(std::string_view b, const std::string& source) : b_(b), source_(source) {}
  template <typename T>
  T get(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof v, what), sizeof v);
    return v;
  }
  const char* take(size_t n, const char* what) {
    if (n > b_.size() - pos_) fail(std::string("truncated while reading ") + what);
    const char* p = b_.data() + pos_;
    pos_ += n;
    return p;
  }
  std::string str(const char* what) {
    uint32_t n = get<uint32_t>(what);
    return std::string(take(n, what), n);
  }
  // A count of items each at least min_bytes long must fit in what is left.
  uint32_t count(const char* what, size_t min_bytes) {
    uint32_t n = get<uint32_t>(what);
    if (min_bytes && n > remaining() / min_bytes) {
      fail("declares " + std::to_string(n) + " " + what + " but only " + std::to_string(remaining()) + " bytes remain");
    }
    return n;
  }
  std::vector<int> indices(const char* what, size_t limit) {
    uint32_t n = count(what, 4);
    std::vector<int> out;
    for (uint32_t k = 0; k < n; ++k) {
      uint32_t i = get<uint32_t>(what);
      if (i >= limit) fail(std::string(what) + " index " + std::to_string(i) + " is out of range");
      out.push_back(static_cast<int>(i));
    }
    return out;
  }
  size_t remaining() const { return b_.size() - pos_; }
  [[noreturn]] void fail(const std::string& msg) const {
    throw std::runtime_error("graph '" + source_ + "': " + msg + " (at byte " + std::to_string(pos_) + ")");
  }

 private:
  std::string_view b_;
  const std::string& source_;
  size_t pos_ = 0;
};

void write_attr(Writer& w, const ops::AttrValue& v) {
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

ops::AttrValue read_attr(Reader& r) {
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
  Writer w;
  w.bytes(kMagic, 8);
  w.put<uint32_t>(kVersion);
  w.put<uint32_t>(static_cast<uint32_t>(g.values.size()));
  for (const Value& v : g.values) {
    w.str(v.name);
    w.put<uint8_t>(static_cast<uint8_t>(v.dtype));
    w.put<uint8_t>(static_cast<uint8_t>(v.shape.size()));
    for (int64_t d : v.shape) w.put<int64_t>(d);
  }
  w.indices(g.inputs);
  w.indices(g.outputs);
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
    w.indices(n.inputs);
    w.indices(n.outputs);
  }
  std::string& out = w.out();
  w.put<uint32_t>(static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(out.data()), out.size())));
  return out;
}

void save_graph(const Graph& graph, const std::string& path) { data::write_file_atomically(path, serialize_graph(graph)); }

Graph load_graph(const std::string& path) {
  std::string bytes;
  try {
    bytes = data::read_file(path);
  } catch (const std::exception&) {
    throw std::runtime_error("graph '" + path + "' cannot be opened");
  }
  return parse_graph(bytes, path);
}

Graph parse_graph(std::string_view bytes, const std::string& source) {
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    throw std::runtime_error("'" + source + "' is not a Kiln graph (bad magic)");
  }
  if (bytes.size() < 8 + 4 + 4) throw std::runtime_error("graph '" + source + "' is truncated");
  Reader r(bytes.substr(0, bytes.size() - 4), source);
  r.take(8, "magic");
  uint32_t version = r.get<uint32_t>("version");
  if (version != kVersion) {
    r.fail("format version " + std::to_string(version) + "; this Kiln reads version " + std::to_string(kVersion));
  }
  uint32_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);
  if (stored != static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()),
                                            static_cast<uInt>(bytes.size() - 4)))) {
    throw std::runtime_error("graph '" + source + "' is corrupt (checksum mismatch)");
  }
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
  g.inputs = r.indices("inputs", nvalues);
  for (int i : g.inputs) {
    // A fixed batch of 0 can never be fed (no sample has zero rows), and the planner would
    // size its buffers from it: refuse it here, naming the input.
    const Value& v = g.values[i];
    if (!v.shape.empty() && v.shape[0] == 0) {
      r.fail("input '" + v.name + "' has a fixed batch dimension of 0 (" + value_type(v) + ")");
    }
  }
  g.outputs = r.indices("outputs", nvalues);
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
    const char* data = r.take(n, "constant data");  // bounded by the bytes present before allocating
    c.tensor = Tensor::from_bytes(data, val.shape, val.dtype);
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
    try {
      check_quantization_attrs(n.call);
    } catch (const std::invalid_argument& e) {
      r.fail("node " + std::to_string(k) + " (" + n.call.op() + "): " + e.what());
    }
    n.inputs = r.indices("node inputs", nvalues);
    n.outputs = r.indices("node outputs", nvalues);
    g.nodes.push_back(std::move(n));
  }
  if (r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " trailing bytes");
  try {
    g.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("graph '" + source + "' is invalid: " + e.what());
  }
  return g;
}

}  // namespace kiln::graph
