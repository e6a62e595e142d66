#include "runtime_export/onnx/external_data.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

namespace kiln::runtime_export::onnx_io {
namespace {

namespace fs = std::filesystem;
using TP = onnx::TensorProto;

// Bytes per element of the types whose size the dims decide; 0 for the others (strings), which
// the initializer reader refuses by type anyway.
uint64_t element_bytes(int32_t type) {
  switch (type) {
    case TP::FLOAT: case TP::INT32: case TP::UINT32: return 4;
    case TP::INT8: case TP::UINT8: case TP::BOOL: return 1;
    case TP::INT16: case TP::UINT16: case TP::FLOAT16: case TP::BFLOAT16: return 2;
    case TP::INT64: case TP::UINT64: case TP::DOUBLE: return 8;
    default: return 0;
  }
}

uint64_t parse_bytes(const std::string& value, const std::string& what) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size()) {
    throw std::invalid_argument(what + " is '" + value + "', not a byte count");
  }
  return v;
}

// `location` under `dir`, which it may not leave: relative, without "..". A symlink inside the
// directory is followed (the directory's owner put it there, not the model; Bazel's runfiles
// are such links).
fs::path resolve(const fs::path& dir, const std::string& location, const std::string& what) {
  if (location.empty()) throw std::invalid_argument(what + " has an empty location");
  if (location.find('\0') != std::string::npos) throw std::invalid_argument(what + " has a location with a NUL byte");
  const fs::path rel(location);
  if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory()) {
    throw std::invalid_argument(what + " has the absolute location '" + location + "' (it must be relative to the model's directory)");
  }
  for (const auto& part : rel) {
    if (part == "..") throw std::invalid_argument(what + " location '" + location + "' escapes the model's directory");
  }
  return dir / rel;
}

void load(TP& t, const fs::path& dir) {
  const std::string what = "tensor '" + t.name() + "' (external data)";
  std::string location;
  uint64_t offset = 0, length = 0;
  bool has_length = false;
  for (const auto& kv : t.external_data()) {
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset") offset = parse_bytes(kv.value(), what + " offset");
    else if (kv.key() == "length") has_length = true, length = parse_bytes(kv.value(), what + " length");
    else if (kv.key() == "checksum") continue;  // optional; not verified
    else throw std::invalid_argument(what + " has the unknown key '" + kv.key() + "'");
  }
  if (dir.empty()) {
    throw std::invalid_argument(what + " lives in the file '" + location +
                                "', and these bytes came from memory: import the model from its path (import_onnx)");
  }
  if (t.has_raw_data() || t.float_data_size() || t.int32_data_size() || t.int64_data_size()) {
    throw std::invalid_argument(what + " also holds data in the model");
  }
  const fs::path file = resolve(dir, location, what);
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw std::invalid_argument(what + " location '" + location + "' is not a readable file");
  const uint64_t size = fs::file_size(file, ec);
  if (ec) throw std::invalid_argument(what + " location '" + location + "' cannot be sized");
  if (offset > size) {
    throw std::invalid_argument(what + " offset " + std::to_string(offset) + " is past the end of '" + location + "' (" +
                                std::to_string(size) + " bytes)");
  }
  if (!has_length) length = size - offset;
  if (length > size - offset) {
    throw std::invalid_argument(what + " offset " + std::to_string(offset) + " + length " + std::to_string(length) +
                                " is past the end of '" + location + "' (" + std::to_string(size) + " bytes)");
  }
  // The dims decide the bytes: checked before reading, so a short tensor cannot pull in a huge file.
  uint64_t want = element_bytes(t.data_type());
  if (want == 0) throw std::invalid_argument(what + " has element type " + std::to_string(t.data_type()) + ", which Kiln does not read");
  for (int64_t d : t.dims()) {
    if (d < 0) throw std::invalid_argument(what + " has a negative dimension");
    if (d != 0 && want > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d)) {
      throw std::invalid_argument(what + " dims overflow");
    }
    want *= static_cast<uint64_t>(d);
  }
  if (want != length) {
    throw std::invalid_argument(what + " has " + std::to_string(length) + " bytes in '" + location + "'; its dims need " +
                                std::to_string(want));
  }
  std::ifstream in(file, std::ios::binary);
  std::string bytes(length, '\0');
  if (!in || !in.seekg(static_cast<std::streamoff>(offset)) || !in.read(bytes.data(), static_cast<std::streamsize>(length))) {
    throw std::invalid_argument(what + ": reading " + std::to_string(length) + " bytes at offset " + std::to_string(offset) +
                                " of '" + location + "' failed");
  }
  t.set_raw_data(std::move(bytes));
  t.clear_external_data();
  t.set_data_location(TP::DEFAULT);
}

bool is_external(const TP& t) { return t.data_location() == TP::EXTERNAL || t.external_data_size() > 0; }

}  // namespace

void load_external_data(onnx::ModelProto& model, const std::string& model_dir) {
  const fs::path dir = model_dir.empty() ? fs::path() : fs::path(model_dir);
  auto* g = model.mutable_graph();
  for (auto& t : *g->mutable_initializer()) {
    if (is_external(t)) load(t, dir);
  }
  for (auto& n : *g->mutable_node()) {
    for (auto& a : *n.mutable_attribute()) {
      if (a.has_t() && is_external(a.t())) load(*a.mutable_t(), dir);
    }
  }
}

}  // namespace kiln::runtime_export::onnx_io
