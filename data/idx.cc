#include "data/idx.h"

#include <zlib.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <sys/stat.h>

namespace kiln::data {
namespace {

struct GzFile {
  gzFile f = nullptr;
  ~GzFile() {
    if (f) gzclose(f);
  }
};

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void read_exact(gzFile f, void* dst, size_t n, const std::string& path, const char* what) {
  size_t done = 0;
  while (done < n) {
    size_t chunk = std::min<size_t>(n - done, 1u << 30);
    int got = gzread(f, static_cast<char*>(dst) + done, static_cast<unsigned>(chunk));
    if (got < 0) {
      int err;
      const char* msg = gzerror(f, &err);
      throw std::runtime_error("read_idx: '" + path + "' is corrupt (" + what + "): " + msg);
    }
    if (got == 0) {
      throw std::runtime_error("read_idx: '" + path + "' is truncated: " + what + " needs " + std::to_string(n) +
                               " bytes, file ends after " + std::to_string(done));
    }
    done += got;
  }
}

}  // namespace

Tensor read_idx(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw std::runtime_error("read_idx: no such file '" + path + "'");
  GzFile gz;
  gz.f = gzopen(path.c_str(), "rb");  // reads plain files transparently too
  if (!gz.f) throw std::runtime_error("read_idx: cannot open '" + path + "'");
  unsigned char header[4];
  read_exact(gz.f, header, 4, path, "magic number");
  if (header[0] != 0 || header[1] != 0) {
    throw std::runtime_error("read_idx: '" + path + "' is not an IDX file (bad magic number)");
  }
  DType dtype;
  switch (header[2]) {
    case 0x08: dtype = DType::u8; break;
    case 0x09: dtype = DType::s8; break;
    case 0x0C: dtype = DType::s32; break;
    case 0x0D: dtype = DType::f32; break;
    default:
      throw std::runtime_error("read_idx: '" + path + "' has unsupported element type 0x" + std::to_string(header[2]));
  }
  int ndim = header[3];
  if (ndim == 0 || ndim > 8) throw std::runtime_error("read_idx: '" + path + "' declares " + std::to_string(ndim) + " dimensions");
  std::vector<unsigned char> dims_raw(4 * ndim);
  read_exact(gz.f, dims_raw.data(), dims_raw.size(), path, "dimensions");
  Shape shape;
  for (int i = 0; i < ndim; ++i) shape.push_back(be32(&dims_raw[4 * i]));
  Tensor t = Tensor::empty(shape, dtype);
  read_exact(gz.f, t.raw_data(), t.nbytes(), path, "data");
  if (dtype_size(dtype) > 1) {  // IDX is big-endian
    unsigned char* p = static_cast<unsigned char*>(t.raw_data());
    for (size_t i = 0; i < t.nbytes(); i += 4) {
      std::swap(p[i], p[i + 3]);
      std::swap(p[i + 1], p[i + 2]);
    }
  }
  char extra;
  if (gzread(gz.f, &extra, 1) > 0) {
    throw std::runtime_error("read_idx: '" + path + "' has data beyond the declared shape " + shape_str(shape));
  }
  return t;
}

}  // namespace kiln::data
