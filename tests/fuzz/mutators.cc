#include "tests/fuzz/mutators.h"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kiln::fuzz {
namespace {

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <typename T>
T get(const std::string& b, size_t& pos, bool& ok) {
  T v{};
  if (!ok || b.size() - pos < sizeof v) return ok = false, v;
  std::memcpy(&v, b.data() + pos, sizeof v);
  pos += sizeof v;
  return v;
}

void write_int(std::string& b, size_t off, int width, bool big, uint64_t v) {
  if (off > b.size() || b.size() - off < static_cast<size_t>(width)) return;
  for (int i = 0; i < width; ++i) b[off + (big ? width - 1 - i : i)] = static_cast<char>(v >> (8 * i));
}

// Sizes up to this many bytes get real data behind them, so the parser gets past "truncated".
constexpr uint64_t kMaxData = 1 << 16;

// dims * element size with wrap-around, as a careless parser would compute it.
uint64_t wrapped_bytes(const std::vector<int64_t>& dims, uint64_t element) {
  uint64_t n = element;
  for (int64_t d : dims) n *= static_cast<uint64_t>(d);
  return n;
}

void fit_data(std::string& data, uint64_t want, Rng& r) {
  if (want > kMaxData) return;
  size_t old = data.size();
  data.resize(want);
  for (size_t i = old; i < data.size(); ++i) data[i] = static_cast<char>(r.next());
}

int64_t interesting_dim(Rng& r) {
  static const int64_t dims[] = {0, 1, 2, 3, 7, 255, 256, 65536, -1, -2, INT64_MIN, INT64_MAX, int64_t{1} << 31,
                                 (int64_t{1} << 32) - 1, int64_t{1} << 32, int64_t{1} << 40, int64_t{1} << 61,
                                 int64_t{1} << 62, (int64_t{1} << 62) + 1, INT64_MAX / 3};
  return r.chance(80) ? dims[r.below(std::size(dims))] : static_cast<int64_t>(r.next());
}

}  // namespace

uint64_t interesting_int(Rng& r) {
  static const uint64_t v[] = {0, 1, 2, 3, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 1000000,
                               0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, uint64_t{1} << 40,
                               uint64_t{1} << 62, 0x7fffffffffffffff, 0x8000000000000000, ~uint64_t{0}, ~uint64_t{1}};
  return v[r.below(std::size(v))];
}

uint32_t crc32_of(std::string_view b) {
  return static_cast<uint32_t>(::crc32(0L, reinterpret_cast<const Bytef*>(b.data()), static_cast<uInt>(b.size())));
}

bool is_gzip(std::string_view b) { return b.size() >= 2 && b[0] == '\x1f' && b[1] == '\x8b'; }

std::string gzip(std::string_view in, int level) {
  z_stream z{};
  deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

bool gunzip(std::string_view in, std::string& out) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return false;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[4096];
  int rc;
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  } while (rc == Z_OK);
  inflateEnd(&z);
  return rc == Z_STREAM_END;
}

void mutate_bytes(std::string& b, Rng& r, const std::vector<Field>& fields, const std::vector<std::string>& dictionary,
                  const std::vector<std::string>& pool) {
  for (size_t round = 0, n = 1 + r.below(3); round < n; ++round) {
    size_t pos = r.below(b.size() + 1), len = 1 + r.below(r.chance(80) ? 8 : 64);
    switch (r.below(10)) {
      case 0:
        if (!b.empty()) b[r.below(b.size())] ^= static_cast<char>(1u << r.below(8));
        break;
      case 1: {
        static const unsigned char bytes[] = {0, 0xff, 0x7f, 0x80, 1, ' ', '\n', '\''};
        if (!b.empty()) b[r.below(b.size())] = static_cast<char>(bytes[r.below(std::size(bytes))]);
        break;
      }
      case 2:
        for (size_t i = 0; i < len; ++i) b.insert(b.begin() + pos, static_cast<char>(r.next()));
        break;
      case 3:
        b.erase(pos, len);
        break;
      case 4:
        if (pos < b.size()) b.insert(r.below(b.size() + 1), b.substr(pos, len));
        break;
      case 5:
        b.resize(r.below(b.size() + 1));
        break;
      case 6:
        if (!pool.empty()) {
          const std::string& other = pool[r.below(pool.size())];
          b = b.substr(0, pos) + other.substr(r.below(other.size() + 1));
        }
        break;
      case 7:
      case 8: {
        static const int widths[] = {1, 2, 4, 8};
        if (!fields.empty() && r.chance(70)) {
          const Field& f = fields[r.below(fields.size())];
          write_int(b, f.offset, f.width, r.chance(90) ? f.big_endian : !f.big_endian, interesting_int(r));
        } else {
          write_int(b, pos, widths[r.below(4)], r.chance(50), interesting_int(r));
        }
        break;
      }
      default:
        if (!dictionary.empty()) {
          const std::string& token = dictionary[r.below(dictionary.size())];
          if (r.chance(50) && pos < b.size()) b.erase(pos, std::min(token.size(), b.size() - pos));
          b.insert(pos, token);
        }
        break;
    }
  }
}

// --- checkpoint: decode a valid file into entries, change them, encode with a correct CRC ---

namespace {

struct Entry {
  std::string name;
  uint8_t dtype;
  std::vector<int64_t> dims;
  uint64_t nbytes;
  std::string data;
};

const uint64_t kCkptElement[] = {4, 2, 1, 1, 4};

bool decode_checkpoint(const std::string& b, std::vector<Entry>& out) {
  size_t pos = 12;
  bool ok = b.size() >= 20 && b.compare(0, 8, "KILNCKPT") == 0;
  uint32_t count = get<uint32_t>(b, pos, ok);
  for (uint32_t i = 0; ok && i < count && i < 64; ++i) {
    Entry e;
    uint32_t len = get<uint32_t>(b, pos, ok);
    if (!ok || b.size() - pos < len) return false;
    e.name = b.substr(pos, len);
    pos += len;
    e.dtype = get<uint8_t>(b, pos, ok);
    uint8_t ndim = get<uint8_t>(b, pos, ok);
    for (int d = 0; d < ndim; ++d) e.dims.push_back(get<int64_t>(b, pos, ok));
    e.nbytes = get<uint64_t>(b, pos, ok);
    if (!ok || b.size() - pos < e.nbytes) return false;
    e.data = b.substr(pos, e.nbytes);
    pos += e.nbytes;
    out.push_back(std::move(e));
  }
  return ok;
}

}  // namespace

void fix_checkpoint_crc(std::string& b) {
  if (b.size() < 4) return;
  write_int(b, b.size() - 4, 4, false, crc32_of(std::string_view(b).substr(0, b.size() - 4)));
}

std::vector<Field> checkpoint_fields(const std::string& b) {
  std::vector<Field> f = {{8, 4, false}, {12, 4, false}};
  size_t pos = 12;
  bool ok = b.size() >= 16;
  uint32_t count = get<uint32_t>(b, pos, ok);
  for (uint32_t i = 0; ok && i < count && i < 64; ++i) {
    f.push_back({pos, 4, false});
    uint32_t len = get<uint32_t>(b, pos, ok);
    if (!ok || b.size() - pos < len) break;
    pos += len;
    f.push_back({pos, 1, false});
    f.push_back({pos + 1, 1, false});
    get<uint8_t>(b, pos, ok);
    uint8_t ndim = get<uint8_t>(b, pos, ok);
    for (int d = 0; d < ndim; ++d) f.push_back({pos + 8 * d, 8, false});
    pos += 8 * ndim;
    f.push_back({pos, 8, false});
    uint64_t nbytes = get<uint64_t>(b, pos, ok);
    if (!ok || b.size() - pos < nbytes) break;
    pos += nbytes;
  }
  return f;
}

bool mutate_checkpoint(const std::string& seed, Rng& r, std::string& out) {
  std::vector<Entry> es;
  if (!decode_checkpoint(seed, es)) return false;
  uint32_t version = 1, count = 0;
  bool count_override = false;
  for (size_t round = 0, n = 1 + r.below(3); round < n; ++round) {
    Entry* e = es.empty() ? nullptr : &es[r.below(es.size())];
    bool consistent = r.chance(85);
    switch (r.below(10)) {
      case 0:
      case 1:
        if (e && !e->dims.empty()) e->dims[r.below(e->dims.size())] = interesting_dim(r);
        break;
      case 2:
        if (e) e->dtype = static_cast<uint8_t>(r.chance(80) ? r.below(5) : r.below(256));
        break;
      case 3:
        if (e && r.chance(50) && e->dims.size() < 12) e->dims.push_back(r.chance(50) ? 1 + r.below(4) : interesting_dim(r));
        else if (e && !e->dims.empty()) e->dims.pop_back();
        break;
      case 4:
        if (e) {
          static const char* names[] = {"", "a\0b", "\xff\xfe", "dense/kernel", "x"};
          size_t k = r.below(std::size(names) + 2);
          if (k < std::size(names)) e->name.assign(names[k], k == 1 ? 3 : std::strlen(names[k]));
          else if (k == std::size(names)) e->name = es[r.below(es.size())].name;  // maybe a duplicate
          else e->name = std::string(1 + r.below(300), 'n');
        }
        break;
      case 5:
        count_override = true;
        count = r.chance(50) ? static_cast<uint32_t>(interesting_int(r)) : static_cast<uint32_t>(es.size() + r.below(3) - 1);
        break;
      case 6:
        if (e && r.chance(50)) es.push_back(*e);
        else if (e) es.erase(es.begin() + r.below(es.size()));
        continue;  // e may dangle now
      case 7:
        if (e) e->nbytes = interesting_int(r), consistent = false;
        break;
      case 8:
        version = static_cast<uint32_t>(r.chance(50) ? r.below(3) : interesting_int(r));
        break;
      default:
        if (e) {
          if (e->dims.empty()) e->dims.push_back(0);
          e->dims[r.below(e->dims.size())] = 0;
        }
        break;
    }
    if (e && consistent) {
      e->nbytes = wrapped_bytes(e->dims, e->dtype < 5 ? kCkptElement[e->dtype] : 1);
      fit_data(e->data, e->nbytes, r);
    }
  }
  out.assign("KILNCKPT", 8);
  put<uint32_t>(out, version);
  put<uint32_t>(out, count_override ? count : static_cast<uint32_t>(es.size()));
  for (const Entry& e : es) {
    put<uint32_t>(out, static_cast<uint32_t>(e.name.size()));
    out += e.name;
    put<uint8_t>(out, e.dtype);
    put<uint8_t>(out, static_cast<uint8_t>(e.dims.size()));
    for (int64_t d : e.dims) put<int64_t>(out, d);
    put<uint64_t>(out, e.nbytes);
    out += e.data;
  }
  put<uint32_t>(out, 0);
  fix_checkpoint_crc(out);
  return true;
}

// --- npy: rebuild the header the way numpy writes it, then maybe bend its text ---

namespace {

std::string numpy_header(const std::string& descr, bool fortran, const std::vector<int64_t>& shape) {
  std::string s = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  s += shape.size() == 1 ? ",), }" : "), }";
  // numpy leaves room to grow the first (C order) dim in place: 21 digits in all.
  if (!shape.empty()) s.append(21 - std::to_string(shape[fortran ? shape.size() - 1 : 0]).size(), ' ');
  return s;
}

std::string wrap_npy(int major, const std::string& header, bool pad) {
  size_t len_bytes = major == 1 ? 2 : 4;
  size_t hlen = header.size() + 1;
  size_t padlen = pad ? 64 - (8 + len_bytes + hlen) % 64 : 0;
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  out.append(len_bytes, '\0');
  write_int(out, 8, static_cast<int>(len_bytes), false, hlen + padlen);
  return out + header + std::string(padlen, ' ') + "\n";
}

size_t npy_element(const std::string& d) {
  if (d.size() < 3) return 1;
  int n = std::atoi(d.c_str() + 2);
  return n > 0 && n <= 16 ? n : 1;
}

}  // namespace

std::vector<Field> npy_fields(const std::string& b) {
  if (b.size() < 10) return {};
  return {{6, 1, false}, {7, 1, false}, {8, b[6] == 1 ? 2 : 4, false}};
}

bool mutate_npy(const std::string& seed, Rng& r, std::string& out) {
  size_t d0 = seed.find("'descr': '"), s0 = seed.find("'shape': (");
  if (seed.size() < 12 || d0 == std::string::npos || s0 == std::string::npos) return false;
  size_t d1 = seed.find('\'', d0 + 10), s1 = seed.find(')', s0);
  if (d1 == std::string::npos || s1 == std::string::npos) return false;
  std::string descr = seed.substr(d0 + 10, d1 - d0 - 10);
  std::vector<int64_t> shape;
  for (const char* p = seed.c_str() + s0 + 10; *p && *p != ')';) {
    char* e;
    long long v = std::strtoll(p, &e, 10);
    if (e == p) ++p;
    else shape.push_back(v), p = e;
  }
  int major = seed[6];
  size_t hlen_end = major == 1 ? 10 : 12;
  uint64_t hlen = major == 1 ? (uint8_t(seed[8]) | uint8_t(seed[9]) << 8) : 0;
  for (int i = 0; major != 1 && i < 4; ++i) hlen |= uint64_t{uint8_t(seed[8 + i])} << (8 * i);
  if (hlen > seed.size() - hlen_end) return false;
  std::string data = seed.substr(hlen_end + hlen);
  bool fortran = false;

  static const char* descrs[] = {"<f4", "<i4", "|u1", "|i1", "<f8", "<i8", ">f4", ">i8", "<f2", "|b1",
                                 "<u4", "<c8", "float32", "f4",  "<U4", "|O",  "<f4 ", "<F4", "", "<i4\x00"};
  for (size_t round = 0, n = 1 + r.below(3); round < n; ++round) {
    switch (r.below(5)) {
      case 0: descr.assign(descrs[r.below(std::size(descrs))]); break;
      case 1: if (!shape.empty()) shape[r.below(shape.size())] = interesting_dim(r); break;
      case 2:
        if (r.chance(50) && shape.size() < 70) shape.push_back(r.chance(70) ? r.below(4) : interesting_dim(r));
        else if (!shape.empty()) shape.pop_back();
        break;
      case 3: fortran = r.chance(50); break;
      default: major = r.chance(80) ? 1 + r.below(3) : r.below(256); break;
    }
  }
  std::string header = numpy_header(descr, fortran, shape);
  if (r.chance(30)) {  // bend the text: numpy's reader is the spec, so each bend has a right answer
    static const char* tokens[] = {"'descr'", "'shape'", "'fortran_order'", "True", "False", "None", "(", ")", ",",
                                   ":", "{", "}", "'", "\"", " ", "\n", "#", "-1", "0", "3L", "07", "1_0", "0x10",
                                   "9223372036854775808", "1e3", "3.0", "\\", "u'", "'<f4'", "'<i8'", "\t", "\r", "\x0b"};
    size_t pos = r.below(header.size() + 1);
    if (r.chance(40) && pos < header.size()) header.erase(pos, 1 + r.below(3));
    if (r.chance(70)) header.insert(std::min(pos, header.size()), tokens[r.below(std::size(tokens))]);
  }
  uint64_t want = wrapped_bytes(shape, npy_element(descr));
  if (r.chance(85)) fit_data(data, want, r);
  if (r.chance(10)) data += static_cast<char>(r.next());
  out = wrap_npy(major, header, r.chance(90)) + data;
  return true;
}

// --- idx: type, rank and big-endian dims, then data sized to match ---

std::vector<Field> idx_fields(const std::string& b) {
  std::vector<Field> f = {{2, 1, true}, {3, 1, true}};
  for (size_t i = 0; b.size() >= 4 && i < static_cast<uint8_t>(b[3]); ++i) f.push_back({4 + 4 * i, 4, true});
  return f;
}

bool mutate_idx_payload(const std::string& payload, Rng& r, std::string& out) {
  if (payload.size() < 4 || payload[0] != 0 || payload[1] != 0) return false;
  uint8_t type = payload[2];
  size_t ndim = static_cast<uint8_t>(payload[3]);
  if (payload.size() < 4 + 4 * ndim) return false;
  std::vector<int64_t> dims;
  for (size_t i = 0; i < ndim; ++i) {
    uint32_t d = 0;
    for (int k = 0; k < 4; ++k) d = d << 8 | static_cast<uint8_t>(payload[4 + 4 * i + k]);
    dims.push_back(d);
  }
  std::string data = payload.substr(4 + 4 * ndim);
  static const uint8_t types[] = {0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xff};
  static const uint32_t udims[] = {0, 1, 2, 3, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 0x10001, 1u << 24};
  for (size_t round = 0, n = 1 + r.below(3); round < n; ++round) {
    switch (r.below(4)) {
      case 0: type = types[r.below(std::size(types))]; break;
      case 1: if (!dims.empty()) dims[r.below(dims.size())] = udims[r.below(std::size(udims))]; break;
      case 2:
        if (r.chance(50) && dims.size() < 12) dims.push_back(r.chance(70) ? 1 + r.below(3) : udims[r.below(std::size(udims))]);
        else if (!dims.empty()) dims.pop_back();
        break;
      default: break;  // data size only
    }
  }
  size_t element = type == 0x0B ? 2 : type == 0x0C || type == 0x0D ? 4 : type == 0x0E ? 8 : 1;
  if (r.chance(85)) fit_data(data, wrapped_bytes(dims, element), r);
  if (r.chance(15)) {  // one byte off
    if (r.chance(50) && !data.empty()) data.pop_back();
    else data.push_back('\0');
  }
  out.assign(2, '\0');
  out += static_cast<char>(type);
  out += static_cast<char>(dims.size());
  for (int64_t d : dims) {
    out.append(4, '\0');
    write_int(out, out.size() - 4, 4, true, static_cast<uint64_t>(d));
  }
  out += data;
  return true;
}

// --- csv: grids of cells, some numbers, some not ---

std::string generate_csv(Rng& r) {
  static const char* cells[] = {"1",    "-2.5", "0",      "3e2",  "1e39",  "1e-46", "nan", "-inf", "inf", "0x1p3",
                                "+4",   " 5 ",  "",       "abc",  "\"6\"", "1.",    ".5",  "1e",   "-",   "7\t",
                                "NaN",  "8\0",  "12345678901234567890", "\xef\xbb\xbf" "9", "1,5", "0.1"};
  const char* seps[] = {",", ",", ",", ";", "\t", " "};
  const char* ends[] = {"\n", "\n", "\r\n", "\r", "\n\n"};
  std::string sep = seps[r.chance(85) ? 0 : r.below(std::size(seps))];
  std::string end = ends[r.chance(80) ? 0 : r.below(std::size(ends))];
  size_t rows = 1 + r.below(5), cols = 1 + r.below(4);
  bool numbers_only = r.chance(50);
  std::string out = r.chance(20) ? "a" + sep + "b" + end : "";
  for (size_t i = 0; i < rows; ++i) {
    size_t n = r.chance(90) ? cols : 1 + r.below(5);
    for (size_t j = 0; j < n; ++j) {
      size_t k = numbers_only ? r.below(3) : r.below(std::size(cells));
      out += j ? sep : "";
      out.append(cells[k], k == 21 ? 2 : std::strlen(cells[k]));
    }
    if (i + 1 < rows || r.chance(70)) out += end;
  }
  return out;
}

std::vector<std::string> driver_seeds(std::vector<std::string> generated, const std::string& format,
                                      const std::string& name, const std::string& extension,
                                      size_t* checked_in) {
  if (const char* dir = std::getenv("KILN_FUZZ_WRITE_CORPUS")) {
    for (size_t i = 0; i < generated.size(); ++i) {
      std::ofstream(std::string(dir) + "/" + name + "-" + std::to_string(i) + "." + extension, std::ios::binary)
          << generated[i];
    }
  }
  std::filesystem::path dir = "tests/fuzz/corpus/" + format;
  if (const char* d = std::getenv("TEST_SRCDIR")) dir = std::filesystem::path(d) / "kiln" / dir;
  std::error_code ec;
  std::vector<std::filesystem::path> paths;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    generated.push_back(ss.str());
  }
  *checked_in = paths.size();
  return generated;
}

}  // namespace kiln::fuzz
