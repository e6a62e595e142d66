#include "nn/checkpoint.h"

#include <set>
#include <stdexcept>

#include "base/byte_io.h"
#include "base/files.h"

namespace kiln::nn {
namespace {

constexpr base::FileFormat kFormat{"KILNCKPT", "checkpoint", 1};
constexpr int kMaxRank = 8;

}  // namespace

void write_checkpoint(const std::string& path, const NamedTensors& entries) {
  base::write_file_atomically(path, serialize_checkpoint(entries));
}

std::string serialize_checkpoint(const NamedTensors& entries) {
  base::ByteWriter w = base::start_file(kFormat);
  w.put<uint32_t>(static_cast<uint32_t>(entries.size()));
  std::set<std::string> names;
  for (const auto& [name, t] : entries) {
    if (!names.insert(name).second) throw std::invalid_argument("write_checkpoint: duplicate entry '" + name + "'");
    if (t.ndim() > kMaxRank) {  // refused here, or the file could not be read back
      throw std::invalid_argument("write_checkpoint: entry '" + name + "' is " + t.describe() + ", rank " +
                                  std::to_string(t.ndim()) + "; checkpoints hold tensors of rank at most " +
                                  std::to_string(kMaxRank));
    }
    Tensor c = t.is_contiguous() ? t : t.clone_detached();
    w.str(name);
    w.put<uint8_t>(static_cast<uint8_t>(c.dtype()));
    w.put<uint8_t>(static_cast<uint8_t>(c.ndim()));
    for (int64_t d : c.shape()) w.put<int64_t>(d);
    w.put<uint64_t>(c.nbytes());
    w.bytes(c.raw_data(), c.nbytes());
  }
  return w.finish_with_crc();
}

NamedTensors read_checkpoint(const std::string& path) {
  std::string bytes;
  try {
    bytes = base::read_file(path);
  } catch (const std::exception&) {
    throw std::runtime_error("checkpoint '" + path + "' cannot be opened");
  }
  return parse_checkpoint(bytes, path);
}

NamedTensors parse_checkpoint(std::string_view bytes, const std::string& path) {
  base::ByteReader r = base::open_file(bytes, kFormat, path);
  // Each entry takes at least a name length, a dtype, a rank and a byte count.
  constexpr size_t kMinEntry = 4 + 1 + 1 + 8;
  uint32_t count = r.count("entries", kMinEntry);
  NamedTensors out;
  std::set<std::string> names;
  for (uint32_t i = 0; i < count; ++i) {
    std::string name = r.str("name");
    if (name.empty() || name.find('\0') != std::string::npos) {
      r.fail("entry " + std::to_string(i) + " has an empty or NUL-holding name");
    }
    if (!names.insert(name).second) r.fail("two entries named '" + name + "'");
    uint8_t dt = r.get<uint8_t>("dtype");
    if (dt > static_cast<uint8_t>(DType::s32)) r.fail("entry '" + name + "' has unknown dtype " + std::to_string(dt));
    uint8_t ndim = r.get<uint8_t>("rank");
    if (ndim > kMaxRank) {
      r.fail("entry '" + name + "' has rank " + std::to_string(ndim) + " (at most " + std::to_string(kMaxRank) + ")");
    }
    Shape shape;
    for (int d = 0; d < ndim; ++d) shape.push_back(r.get<int64_t>("dimension"));
    DType dtype = static_cast<DType>(dt);
    uint64_t want = 0;
    try {
      want = checked_nbytes(shape, dtype_size(dtype), "entry '" + name + "'");
    } catch (const std::invalid_argument& e) {
      r.fail(e.what());
    }
    uint64_t nbytes = r.get<uint64_t>("byte count");
    if (nbytes != want) {
      r.fail("entry '" + name + "': " + std::to_string(nbytes) + " bytes do not fit " + dtype_name(dtype) + shape_str(shape));
    }
    std::string_view data = r.take(nbytes, "tensor data");  // bounded by the bytes present before allocating
    out.emplace_back(name, Tensor::from_bytes(data.data(), shape, dtype));
  }
  r.expect_end("the last entry");
  return out;
}

}  // namespace kiln::nn
