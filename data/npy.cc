#include "data/npy.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <regex>
#include <stdexcept>
#include <vector>

#include "data/atomic_file.h"

namespace kiln::data {

Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("read_npy: cannot open '" + path + "'");
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) {
    throw std::runtime_error("read_npy: '" + path + "' is not a .npy file (bad magic)");
  }
  uint32_t header_len = 0;
  unsigned char lenbuf[4] = {0, 0, 0, 0};
  int major = static_cast<unsigned char>(magic[6]);
  if (major == 1) {
    if (!in.read(reinterpret_cast<char*>(lenbuf), 2)) throw std::runtime_error("read_npy: '" + path + "' is truncated");
    header_len = lenbuf[0] | (lenbuf[1] << 8);
  } else if (major == 2 || major == 3) {
    if (!in.read(reinterpret_cast<char*>(lenbuf), 4)) throw std::runtime_error("read_npy: '" + path + "' is truncated");
    header_len = lenbuf[0] | (lenbuf[1] << 8) | (lenbuf[2] << 16) | (uint32_t{lenbuf[3]} << 24);
  } else {
    throw std::runtime_error("read_npy: '" + path + "' has unsupported format version " + std::to_string(major));
  }
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) throw std::runtime_error("read_npy: '" + path + "' has a truncated header");
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([^']+)'"))) {
    throw std::runtime_error("read_npy: '" + path + "' header has no descr");
  }
  std::string descr = m[1];
  if (std::regex_search(header, std::regex("'fortran_order':\\s*True"))) {
    throw std::runtime_error("read_npy: '" + path + "' is Fortran-ordered; save it C-ordered");
  }
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)"))) {
    throw std::runtime_error("read_npy: '" + path + "' header has no shape");
  }
  Shape shape;
  std::string dims = m[1];
  std::regex num("\\d+");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator(); ++it) {
    shape.push_back(std::stoll(it->str()));
  }
  struct Kind {
    const char* descr;
    size_t size;
    DType out;
  };
  const Kind kinds[] = {{"<f4", 4, DType::f32}, {"<i4", 4, DType::s32}, {"|u1", 1, DType::u8}, {"|i1", 1, DType::s8},
                        {"<f8", 8, DType::f32}, {"<i8", 8, DType::s32}};
  const Kind* kind = nullptr;
  for (const Kind& k : kinds) {
    if (descr == k.descr) kind = &k;
  }
  if (!kind) throw std::runtime_error("read_npy: '" + path + "' has unsupported dtype '" + descr + "'");
  int64_t n = numel(shape);
  std::vector<char> raw(n * kind->size);
  if (!in.read(raw.data(), raw.size())) {
    throw std::runtime_error("read_npy: '" + path + "' is truncated: shape " + shape_str(shape) + " needs " +
                             std::to_string(raw.size()) + " data bytes");
  }
  if (kind->size != 8) return Tensor::from_bytes(raw.data(), shape, kind->out);
  Tensor t = Tensor::empty(shape, kind->out);
  for (int64_t i = 0; i < n; ++i) {
    if (descr == "<f8") {
      double v;
      std::memcpy(&v, raw.data() + 8 * i, 8);
      t.data<float>()[i] = static_cast<float>(v);
    } else {
      int64_t v;
      std::memcpy(&v, raw.data() + 8 * i, 8);
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
        throw std::runtime_error("read_npy: '" + path + "' value " + std::to_string(v) + " at " + std::to_string(i) +
                                 " does not fit s32");
      }
      t.data<int32_t>()[i] = static_cast<int32_t>(v);
    }
  }
  return t;
}

void write_npy(const std::string& path, const Tensor& t_in) {
  Tensor t = t_in.dtype() == DType::bf16 ? Tensor::from_vector(t_in.to_vector(), t_in.shape()) : t_in.clone_detached();
  const char* descr = t.dtype() == DType::f32 ? "<f4" : t.dtype() == DType::s32 ? "<i4" : t.dtype() == DType::u8 ? "|u1" : "|i1";
  std::string shape = "(";
  for (int64_t d : t.shape()) shape += std::to_string(d) + ", ";
  if (t.ndim() > 1) shape.resize(shape.size() - 2);
  if (t.ndim() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  bytes.append(static_cast<const char*>(t.raw_data()), t.nbytes());
  write_file_atomically(path, bytes);
}

}  // namespace kiln::data
