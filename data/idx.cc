#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "base/files.h"

namespace kiln::data {
namespace {

constexpr int kMaxRank = 8;
constexpr size_t kMaxHeader = 4 + 4 * kMaxRank;

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw std::runtime_error("read_idx: '" + source + "' " + what);
}

// Inflates a gzip file (one member or several concatenated, as `cat a.gz b.gz` makes) into
// caller buffers piece by piece, so nothing is allocated for data that never decompresses.
class Gunzip {
 public:
  Gunzip(std::string_view in, const std::string& source) : rest_(in), source_(source) {
    if (inflateInit2(&z_, 15 + 16) != Z_OK) fail(source_, "cannot start zlib");
  }
  ~Gunzip() { inflateEnd(&z_); }
  Gunzip(const Gunzip&) = delete;
  Gunzip& operator=(const Gunzip&) = delete;

  // Fills dst[0, n); returns fewer bytes only when the last member ended cleanly.
  size_t read(unsigned char* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      refill();
      if (member_ended_) {
        if (input_left() == 0) break;
        if (!next_is_gzip_magic()) fail(source_, "has bytes after the end of the gzip stream");
        inflateReset(&z_);
        member_ended_ = false;
      }
      uInt want = static_cast<uInt>(std::min<size_t>(n - done, UINT_MAX));
      z_.next_out = dst + done;
      z_.avail_out = want;
      int rc = inflate(&z_, Z_NO_FLUSH);
      done += want - z_.avail_out;
      if (rc == Z_STREAM_END) {
        member_ended_ = true;
      } else if (rc == Z_BUF_ERROR) {  // no progress possible: the input ran out mid-member
        fail(source_, "is a truncated gzip stream");
      } else if (rc != Z_OK) {
        fail(source_, std::string("is a corrupt gzip stream: ") + (z_.msg ? z_.msg : "zlib error " + std::to_string(rc)));
      }
    }
    return done;
  }

  // Deflate expands at most 1032:1; the slack covers input zlib has consumed but not yet
  // written out (a pending match and its bit buffer).
  uint64_t max_output() const { return input_left() * 1032 + 65536; }

 private:
  uint64_t input_left() const { return uint64_t{z_.avail_in} + rest_.size(); }
  void refill() {
    if (z_.avail_in != 0 || rest_.empty()) return;
    size_t chunk = std::min<size_t>(rest_.size(), UINT_MAX);
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(rest_.data()));
    z_.avail_in = static_cast<uInt>(chunk);
    rest_.remove_prefix(chunk);
  }
  bool next_is_gzip_magic() const {
    auto at = [&](size_t i) -> int {
      if (i < z_.avail_in) return z_.next_in[i];
      i -= z_.avail_in;
      return i < rest_.size() ? static_cast<unsigned char>(rest_[i]) : -1;
    };
    return at(0) == 0x1f && at(1) == 0x8b;
  }

  z_stream z_{};
  std::string_view rest_;
  const std::string& source_;
  bool member_ended_ = false;
};

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

DType element_type(const unsigned char* magic, const std::string& source) {
  if (magic[0] != 0 || magic[1] != 0) fail(source, "is not an IDX file (bad magic number)");
  char code[8];
  std::snprintf(code, sizeof code, "0x%02X", magic[2]);
  switch (magic[2]) {
    case 0x08: return DType::u8;
    case 0x09: return DType::s8;
    case 0x0C: return DType::s32;
    case 0x0D: return DType::f32;
    case 0x0B: fail(source, "has element type " + std::string(code) + " (int16), which Kiln does not support");
    case 0x0E: fail(source, "has element type " + std::string(code) + " (float64), which Kiln does not support");
    default: fail(source, "has unknown element type " + std::string(code));
  }
}

int rank(const unsigned char* magic, const std::string& source) {
  int ndim = magic[3];
  if (ndim < 1 || ndim > kMaxRank) {
    fail(source, "declares " + std::to_string(ndim) + " dimensions (expected 1 to " + std::to_string(kMaxRank) + ")");
  }
  return ndim;
}

Shape dims(const unsigned char* p, int ndim) {
  Shape shape;
  for (int i = 0; i < ndim; ++i) shape.push_back(be32(p + 4 * i));
  return shape;
}

uint64_t data_bytes(const Shape& shape, DType dtype, const std::string& source) {
  try {
    return checked_nbytes(shape, dtype_size(dtype), "shape");
  } catch (const std::invalid_argument& e) {
    fail(source, std::string("has a bad ") + e.what());
  }
}

[[noreturn]] void truncated(const std::string& source, const Shape& shape, uint64_t needed, uint64_t found) {
  fail(source, "is truncated: shape " + shape_str(shape) + " needs " + std::to_string(needed) + " data bytes, found " +
                   std::to_string(found));
}

// IDX stores elements big-endian.
void to_host_order(Tensor& t) {
  size_t size = dtype_size(t.dtype());
  if (size == 1) return;
  auto* p = static_cast<unsigned char*>(t.raw_data());
  for (size_t i = 0; i + size <= t.nbytes(); i += size) std::reverse(p + i, p + i + size);
}

Tensor parse_plain(std::string_view bytes, const std::string& source) {
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 4) fail(source, "is too short for an IDX header");
  DType dtype = element_type(u, source);
  int ndim = rank(u, source);
  size_t header = 4 + 4 * size_t(ndim);
  if (bytes.size() < header) fail(source, "is truncated in its dimensions");
  Shape shape = dims(u + 4, ndim);
  uint64_t needed = data_bytes(shape, dtype, source);
  uint64_t found = bytes.size() - header;
  if (found < needed) truncated(source, shape, needed, found);
  if (found > needed) fail(source, "has " + std::to_string(found - needed) + " bytes beyond the declared shape " + shape_str(shape));
  Tensor t = Tensor::from_bytes(u + header, shape, dtype);
  to_host_order(t);
  return t;
}

Tensor parse_gzip(std::string_view bytes, const std::string& source) {
  Gunzip gz(bytes, source);
  unsigned char head[kMaxHeader];
  if (gz.read(head, 4) < 4) fail(source, "is too short for an IDX header");
  DType dtype = element_type(head, source);
  int ndim = rank(head, source);
  if (gz.read(head + 4, 4 * ndim) < 4 * size_t(ndim)) fail(source, "is truncated in its dimensions");
  Shape shape = dims(head + 4, ndim);
  uint64_t needed = data_bytes(shape, dtype, source);
  // A lying header must not make us allocate what the compressed bytes cannot hold.
  if (needed > gz.max_output()) {
    fail(source, "is truncated: shape " + shape_str(shape) + " needs " + std::to_string(needed) +
                     " data bytes, more than the remaining compressed bytes can hold");
  }
  Tensor t = Tensor::empty(shape, dtype);
  size_t found = gz.read(static_cast<unsigned char*>(t.raw_data()), needed);
  if (found < needed) truncated(source, shape, needed, found);
  unsigned char extra;
  if (gz.read(&extra, 1) != 0) fail(source, "has data beyond the declared shape " + shape_str(shape));
  to_host_order(t);
  return t;
}

}  // namespace

Tensor read_idx(const std::string& path) { return parse_idx(base::read_file(path), path); }

Tensor parse_idx(std::string_view bytes, const std::string& source) {
  bool gzip = bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f && static_cast<unsigned char>(bytes[1]) == 0x8b;
  return gzip ? parse_gzip(bytes, source) : parse_plain(bytes, source);
}

}  // namespace kiln::data
