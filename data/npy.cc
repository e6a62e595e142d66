#include "data/npy.h"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "base/files.h"
#include "data/escape.h"

namespace kiln::data {
namespace {

// numpy 2's NPY_MAXDIMS; anything numpy can write fits.
constexpr size_t kMaxRank = 64;

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw std::runtime_error("read_npy: '" + source + "' " + what);
}

// Header bytes come from the file; escape them before they go into a message.
std::string printable(std::string_view s) { return escape_for_message(s, 64); }

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i - 1 < n) return false;
    for (size_t k = 1; k <= n; ++k) {
      unsigned char d = s[i + k];
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

struct Header {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
};

// The header is a Python dict literal; numpy reads it with ast.literal_eval and then insists
// on exactly these three keys and value types. Only that subset of Python is accepted here.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& source) : s_(text), source_(source) {}

  Header parse() {
    Header h;
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    skip_space();
    expect('{', "to open the dict");
    skip_space();
    while (!consume('}')) {
      size_t key_at = pos_;
      std::string key = string_literal("a key");
      skip_space();
      expect(':', "after key '" + key + "'");
      skip_space();
      bool* seen;
      if (key == "descr") {
        seen = &seen_descr;
        h.descr = string_literal("the descr string");
      } else if (key == "fortran_order") {
        seen = &seen_fortran;
        h.fortran_order = boolean();
      } else if (key == "shape") {
        seen = &seen_shape;
        h.shape = tuple();
      } else {
        error("has unknown key '" + printable(key) + "'", key_at);
      }
      if (*seen) error("has key '" + key + "' twice", key_at);
      *seen = true;
      skip_space();
      if (consume('}')) break;
      expect(',', "or '}' after the value of '" + key + "'");
      skip_space();
    }
    if (!seen_descr) error("has no 'descr' key", pos_);
    if (!seen_fortran) error("has no 'fortran_order' key", pos_);
    if (!seen_shape) error("has no 'shape' key", pos_);
    // numpy pads with spaces and ends the header with one newline.
    std::string_view rest = s_.substr(pos_);
    if (rest.empty() || rest.back() != '\n') error("does not end in a newline", s_.size());
    size_t pad = rest.find_first_not_of(' ');
    if (pad != rest.size() - 1) error("has bytes after the dict", pos_ + pad);
    return h;
  }

 private:
  [[noreturn]] void error(const std::string& what, size_t at) {
    fail(source_, "header " + what + " (at header byte " + std::to_string(at) + ")");
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }
  bool consume(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c, const std::string& context) {
    if (consume(c)) return;
    std::string found = pos_ < s_.size() ? "'" + printable(s_.substr(pos_, 1)) + "'" : "the end";
    error("expected '" + std::string(1, c) + "' " + context + ", found " + found, pos_);
  }
  std::string string_literal(const char* what) {
    if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) error("expected " + std::string(what) + " in quotes", pos_);
    char quote = s_[pos_];
    size_t start = ++pos_;
    while (pos_ < s_.size() && s_[pos_] != quote) {
      // No supported descr needs escapes, and a raw newline ends a Python string with an error.
      if (s_[pos_] == '\\' || s_[pos_] == '\n') error("has an escape or newline inside a string", pos_);
      ++pos_;
    }
    if (pos_ >= s_.size()) error("has an unterminated string", start - 1);
    return std::string(s_.substr(start, pos_++ - start));
  }
  bool boolean() {
    size_t start = pos_;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_')) ++pos_;
    std::string_view word = s_.substr(start, pos_ - start);
    if (word == "True") return true;
    if (word == "False") return false;
    error("fortran_order must be True or False", start);
  }
  int64_t integer() {
    size_t start = pos_;
    bool negative = consume('-');
    size_t digits = pos_;
    uint64_t v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, uint64_t(s_[pos_] - '0'), &v) ||
          v > uint64_t(std::numeric_limits<int64_t>::max())) {
        error("has a dimension too large for 64 bits", start);
      }
      ++pos_;
    }
    if (pos_ == digits) error("shape must hold integers", start);
    if (s_[digits] == '0' && pos_ - digits > 1) error("has an integer with a leading zero", start);
    return negative ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
  }
  Shape tuple() {
    Shape shape;
    expect('(', "to open the shape tuple");
    skip_space();
    while (!consume(')')) {
      if (shape.size() == kMaxRank) error("shape has more than " + std::to_string(kMaxRank) + " dimensions", pos_);
      shape.push_back(integer());
      skip_space();
      if (consume(')')) {
        if (shape.size() == 1) error("shape (n) is not a tuple; write (n,)", pos_ - 1);
        break;
      }
      expect(',', "or ')' in the shape tuple");
      skip_space();
    }
    return shape;
  }

  std::string_view s_;
  const std::string& source_;
  size_t pos_ = 0;
};

uint32_t le(const unsigned char* p, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

Tensor read_npy(const std::string& path) { return parse_npy(base::read_file(path), path); }

Tensor parse_npy(std::string_view bytes, const std::string& source) {
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 8 || bytes.substr(0, 6) != std::string_view("\x93NUMPY", 6)) {
    fail(source, "is not a .npy file (bad magic)");
  }
  int major = u[6], minor = u[7];
  if (major < 1 || major > 3 || minor != 0) {
    fail(source, "has unsupported format version " + std::to_string(major) + "." + std::to_string(minor));
  }
  size_t len_size = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + len_size) fail(source, "is truncated in its header length");
  uint64_t header_len = le(u + 8, static_cast<int>(len_size));
  size_t header_start = 8 + len_size;
  if (header_len > bytes.size() - header_start) {
    fail(source, "declares a " + std::to_string(header_len) + "-byte header but only " +
                     std::to_string(bytes.size() - header_start) + " bytes follow");
  }
  std::string_view text = bytes.substr(header_start, header_len);
  // Versions 1 and 2 are latin1, where every byte is a character; version 3 is UTF-8.
  if (major == 3 && !valid_utf8(text)) fail(source, "header is not valid UTF-8");
  Header h = HeaderParser(text, source).parse();
  if (h.fortran_order) fail(source, "is Fortran-ordered; save it C-ordered (np.ascontiguousarray)");

  struct Kind {
    const char* descr;
    size_t size;
    DType out;
  };
  static const Kind kinds[] = {{"<f4", 4, DType::f32}, {"<i4", 4, DType::s32}, {"|u1", 1, DType::u8},
                               {"|i1", 1, DType::s8},  {"<f8", 8, DType::f32}, {"<i8", 8, DType::s32}};
  const Kind* kind = nullptr;
  for (const Kind& k : kinds) {
    if (h.descr == k.descr) kind = &k;
  }
  if (!kind) {
    fail(source, "has unsupported dtype '" + printable(h.descr) + "' (expected <f4, <i4, |u1, |i1, <f8 or <i8)");
  }
  uint64_t nbytes;
  try {
    nbytes = checked_nbytes(h.shape, kind->size, "shape");
  } catch (const std::invalid_argument& e) {
    fail(source, std::string("has a bad ") + e.what());
  }
  std::string_view data = bytes.substr(header_start + header_len);
  if (data.size() != nbytes) {
    fail(source, std::string(data.size() < nbytes ? "is truncated" : "has bytes after the array") + ": shape " +
                     shape_str(h.shape) + " of " + kind->descr + " needs " + std::to_string(nbytes) +
                     " data bytes, found " + std::to_string(data.size()));
  }
  if (kind->size != 8) return Tensor::from_bytes(data.data(), h.shape, kind->out);
  Tensor t = Tensor::empty(h.shape, kind->out);
  uint64_t n = nbytes / 8;
  for (uint64_t i = 0; i < n; ++i) {
    if (kind->out == DType::f32) {
      double v;
      std::memcpy(&v, data.data() + 8 * i, 8);
      if (std::isfinite(v) && std::fabs(v) > std::numeric_limits<float>::max()) {
        fail(source, "value " + std::to_string(v) + " at index " + std::to_string(i) + " does not fit f32");
      }
      t.data<float>()[i] = static_cast<float>(v);
    } else {
      int64_t v;
      std::memcpy(&v, data.data() + 8 * i, 8);
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
        fail(source, "value " + std::to_string(v) + " at index " + std::to_string(i) + " does not fit s32");
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
  base::write_file_atomically(path, bytes);
}

}  // namespace kiln::data
