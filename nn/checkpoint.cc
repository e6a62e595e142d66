#include "nn/checkpoint.h"

#include <zlib.h>

#include <cstring>
#include <set>
#include <stdexcept>

#include "data/atomic_file.h"

namespace kiln::nn {
namespace {

constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'C', 'K', 'P', 'T'};
constexpr uint32_t kVersion = 1;
constexpr int kMaxRank = 8;

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

class Reader {
 public:
  Reader(std::string_view bytes, const std::string& path) : b_(bytes), path_(path) {}
  template <typename T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  const char* take(size_t n, const char* what) {
    need(n, what);
    const char* p = b_.data() + pos_;
    pos_ += n;
    return p;
  }
  size_t remaining() const { return b_.size() - pos_; }

 private:
  void need(size_t n, const char* what) {
    if (n > b_.size() - pos_) {
      throw std::runtime_error("checkpoint '" + path_ + "' is truncated (reading " + what + " at byte " +
                               std::to_string(pos_) + ")");
    }
  }
  std::string_view b_;
  const std::string& path_;
  size_t pos_ = 0;
};

}  // namespace

void write_checkpoint(const std::string& path, const NamedTensors& entries) {
  data::write_file_atomically(path, serialize_checkpoint(entries));
}

std::string serialize_checkpoint(const NamedTensors& entries) {
  std::string out(kMagic, 8);
  put<uint32_t>(out, kVersion);
  put<uint32_t>(out, static_cast<uint32_t>(entries.size()));
  std::set<std::string> names;
  for (const auto& [name, t] : entries) {
    if (!names.insert(name).second) throw std::invalid_argument("write_checkpoint: duplicate entry '" + name + "'");
    if (t.ndim() > kMaxRank) {  // refused here, or the file could not be read back
      throw std::invalid_argument("write_checkpoint: entry '" + name + "' is " + t.describe() + ", rank " +
                                  std::to_string(t.ndim()) + "; checkpoints hold tensors of rank at most " +
                                  std::to_string(kMaxRank));
    }
    Tensor c = t.is_contiguous() ? t : t.clone_detached();
    put<uint32_t>(out, static_cast<uint32_t>(name.size()));
    out += name;
    put<uint8_t>(out, static_cast<uint8_t>(c.dtype()));
    put<uint8_t>(out, static_cast<uint8_t>(c.ndim()));
    for (int64_t d : c.shape()) put<int64_t>(out, d);
    put<uint64_t>(out, c.nbytes());
    out.append(static_cast<const char*>(c.raw_data()), c.nbytes());
  }
  put<uint32_t>(out, static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(out.data()), out.size())));
  return out;
}

NamedTensors read_checkpoint(const std::string& path) {
  std::string bytes;
  try {
    bytes = data::read_file(path);
  } catch (const std::exception&) {
    throw std::runtime_error("checkpoint '" + path + "' cannot be opened");
  }
  return parse_checkpoint(bytes, path);
}

NamedTensors parse_checkpoint(std::string_view bytes, const std::string& path) {
  constexpr size_t kHeader = 8 + 4 + 4, kCrc = 4;
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    throw std::runtime_error("'" + path + "' is not a Kiln checkpoint (bad magic)");
  }
  if (bytes.size() < kHeader + kCrc) {
    throw std::runtime_error("checkpoint '" + path + "' is truncated (" + std::to_string(bytes.size()) +
                             " bytes, the header and checksum alone need " + std::to_string(kHeader + kCrc) + ")");
  }
  Reader r(bytes.substr(0, bytes.size() - kCrc), path);
  r.take(8, "magic");
  uint32_t version = r.get<uint32_t>("version");
  if (version != kVersion) {
    throw std::runtime_error("checkpoint '" + path + "' has format version " + std::to_string(version) +
                             "; this Kiln reads version " + std::to_string(kVersion));
  }
  uint32_t stored_crc;
  std::memcpy(&stored_crc, bytes.data() + bytes.size() - kCrc, kCrc);
  uint32_t actual = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size() - kCrc)));
  if (stored_crc != actual) throw std::runtime_error("checkpoint '" + path + "' is corrupt (checksum mismatch)");
  uint32_t count = r.get<uint32_t>("entry count");
  // Each entry takes at least a name length, a dtype, a rank and a byte count.
  constexpr size_t kMinEntry = 4 + 1 + 1 + 8;
  if (count > r.remaining() / kMinEntry) {
    throw std::runtime_error("checkpoint '" + path + "' declares " + std::to_string(count) + " entries but holds " +
                             std::to_string(r.remaining()) + " bytes after its header");
  }
  NamedTensors out;
  std::set<std::string> names;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t len = r.get<uint32_t>("name length");
    std::string name(r.take(len, "name"), len);
    if (name.empty() || name.find('\0') != std::string::npos) {
      throw std::runtime_error("checkpoint '" + path + "' entry " + std::to_string(i) + " has an empty or NUL-holding name");
    }
    if (!names.insert(name).second) {
      throw std::runtime_error("checkpoint '" + path + "' has two entries named '" + name + "'");
    }
    uint8_t dt = r.get<uint8_t>("dtype");
    if (dt > static_cast<uint8_t>(DType::s32)) {
      throw std::runtime_error("checkpoint '" + path + "' entry '" + name + "' has unknown dtype " + std::to_string(dt));
    }
    uint8_t ndim = r.get<uint8_t>("rank");
    if (ndim > kMaxRank) {
      throw std::runtime_error("checkpoint '" + path + "' entry '" + name + "' has rank " + std::to_string(ndim) +
                               " (at most " + std::to_string(kMaxRank) + ")");
    }
    Shape shape;
    for (int d = 0; d < ndim; ++d) shape.push_back(r.get<int64_t>("dimension"));
    DType dtype = static_cast<DType>(dt);
    uint64_t want = 0;
    try {
      want = checked_nbytes(shape, dtype_size(dtype), "checkpoint '" + path + "' entry '" + name + "'");
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(e.what());
    }
    uint64_t nbytes = r.get<uint64_t>("byte count");
    if (nbytes != want) {
      throw std::runtime_error("checkpoint '" + path + "' entry '" + name + "': " + std::to_string(nbytes) +
                               " bytes do not fit " + dtype_name(dtype) + shape_str(shape));
    }
    const char* data = r.take(nbytes, "tensor data");  // bounded by the bytes present before allocating
    out.emplace_back(name, Tensor::from_bytes(data, shape, dtype));
  }
  if (r.remaining() != 0) {
    throw std::runtime_error("checkpoint '" + path + "' has " + std::to_string(r.remaining()) +
                             " trailing bytes after its last entry");
  }
  return out;
}

}  // namespace kiln::nn
