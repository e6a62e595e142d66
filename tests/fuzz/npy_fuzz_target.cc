#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

#include "data/npy.h"
#include "tests/fuzz/fuzz_support.h"

// Besides invariants, every accepted file is checked against a reference reading of the header
// as numpy does it (ast.literal_eval of a dict with exactly descr/fortran_order/shape, then
// numpy's dtype and size rules). The reference is only as strict as numpy is known to be: where
// numpy's behaviour is not modelled here (escapes, aliases, structured dtypes, ...) it says
// "unsure" and only the invariants apply.
namespace {

const char* const kFormat = "npy";

enum class Verdict { kValid, kInvalid, kUnsure };
struct Stop {
  Verdict verdict;
  std::string why;
};

struct Value {
  enum Kind { kStr, kBool, kInt, kTuple, kNone } kind = kNone;
  std::string str;
  bool boolean = false;
  bool huge = false;  // an int outside int64
  int64_t integer = 0;
  std::vector<Value> items;
};

// Enough of Python's literal syntax for an npy header.
class Literal {
 public:
  Literal(std::string_view text, bool allow_long_suffix) : s_(text), long_suffix_(allow_long_suffix) {}

  Value dict_of_strings(std::map<std::string, Value>& out) {
    space();
    expect('{');
    space();
    while (peek() != '}') {
      Value key = value();
      if (key.kind != Value::kStr) invalid("a header key is not a string");
      space();
      expect(':');
      space();
      out[key.str] = value();  // a repeated key: Python keeps the last
      space();
      if (peek() != ',') break;
      ++pos_;
      space();
    }
    expect('}');
    space();
    if (pos_ != s_.size()) invalid("text after the header dict");
    return {};
  }

 private:
  [[noreturn]] void invalid(const std::string& why) { throw Stop{Verdict::kInvalid, why}; }
  [[noreturn]] void unsure(const std::string& why) { throw Stop{Verdict::kUnsure, why}; }
  int peek() const { return pos_ < s_.size() ? static_cast<unsigned char>(s_[pos_]) : -1; }
  void expect(char c) {
    if (peek() != c) invalid(std::string("expected '") + c + "' at header byte " + std::to_string(pos_));
    ++pos_;
  }
  // Inside brackets Python skips spaces, tabs, form feeds, newlines and comments.
  void space() {
    while (true) {
      int c = peek();
      if (c == ' ' || c == '\t' || c == '\f' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (peek() != -1 && peek() != '\n' && peek() != '\r') ++pos_;
      } else if (c == '\\') {
        unsure("line continuation");
      } else {
        return;
      }
    }
  }
  static bool ident(int c) { return c == '_' || std::isalnum(c) || c >= 0x80; }

  Value value() {
    int c = peek();
    if (c == '\'' || c == '"') return string();
    if (c == '(') return tuple();
    if (c == '+' || c == '-') {
      bool neg = c == '-';
      ++pos_;
      space();
      if (peek() < '0' || peek() > '9') invalid("a sign not followed by a number");
      Value v = number();
      if (neg) v.integer = -v.integer;
      return v;
    }
    if (c >= '0' && c <= '9') return number();
    if (c == '[' || c == '{' || c == '.') unsure("a list, dict or float literal");
    if (c != -1 && ident(c)) {
      size_t start = pos_;
      while (ident(peek())) ++pos_;
      std::string_view name = s_.substr(start, pos_ - start);
      if (peek() == '\'' || peek() == '"') unsure("a prefixed string");
      Value v;
      if (name == "True" || name == "False") {
        v.kind = Value::kBool;
        v.boolean = name == "True";
      } else if (name != "None") {
        invalid("a bare name in the header");
      }
      return v;
    }
    invalid("unexpected header byte " + std::to_string(c));
  }

  Value string() {
    Value v;
    v.kind = Value::kStr;
    // Adjacent literals concatenate, as in Python.
    while (peek() == '\'' || peek() == '"') {
      char q = static_cast<char>(peek());
      if (pos_ + 2 < s_.size() && s_[pos_ + 1] == q && s_[pos_ + 2] == q) unsure("a triple-quoted string");
      ++pos_;
      while (peek() != q) {
        int c = peek();
        if (c == -1 || c == '\n' || c == '\r') invalid("an unterminated string");
        if (c == '\\' || c >= 0x80) unsure("an escape or non-ASCII byte in a string");
        v.str += static_cast<char>(c);
        ++pos_;
      }
      ++pos_;
      size_t save = pos_;
      space();
      if (peek() == '\'' || peek() == '"') continue;
      size_t p = pos_;
      while (p < s_.size() && ident(static_cast<unsigned char>(s_[p]))) ++p;
      if (p > pos_ && p < s_.size() && (s_[p] == '\'' || s_[p] == '"')) unsure("a prefixed string");
      pos_ = save;
      break;
    }
    return v;
  }

  Value number() {
    Value v;
    v.kind = Value::kInt;
    size_t start = pos_;
    if (peek() == '0' && pos_ + 1 < s_.size() && std::strchr("xXoObB", s_[pos_ + 1])) unsure("a prefixed int");
    bool nonzero = false;
    while (true) {
      int c = peek();
      if (c >= '0' && c <= '9') {
        int d = c - '0';
        nonzero |= d != 0;
        if (!v.huge && (__builtin_mul_overflow(v.integer, 10, &v.integer) ||
                        __builtin_add_overflow(v.integer, d, &v.integer))) {
          v.huge = true;
          v.integer = 0;
        }
        ++pos_;
      } else if (c == '_' && pos_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_ + 1]))) {
        ++pos_;
      } else {
        break;
      }
    }
    if (s_[start] == '0' && nonzero) invalid("a decimal int with a leading zero");
    if (long_suffix_ && peek() == 'L') ++pos_;  // numpy filters Python 2 longs from 1.0/2.0 headers
    int c = peek();
    if (c == '.' || c == 'e' || c == 'E' || c == 'j' || c == 'J') invalid("a float or complex number");
    if (c != -1 && ident(c)) invalid("a number run into a name");
    return v;
  }

  Value tuple() {
    expect('(');
    space();
    Value v;
    v.kind = Value::kTuple;
    bool comma = false;
    while (peek() != ')') {
      v.items.push_back(value());
      space();
      if (peek() != ',') break;
      comma = true;
      ++pos_;
      space();
    }
    expect(')');
    if (v.items.size() == 1 && !comma) return v.items[0];  // (3) is 3, not a tuple
    return v;
  }

  std::string_view s_;
  bool long_suffix_;
  size_t pos_ = 0;
};

struct Descr {
  char kind;  // f, i, u, or 0 for a dtype Kiln does not read
  int size;
  bool big_endian;
};

std::optional<Descr> parse_descr(const std::string& d) {
  static const std::map<std::string, std::string> aliases = {
      {"float32", "f4"}, {"float64", "f8"}, {"int32", "i4"}, {"int64", "i8"}, {"uint8", "u1"}, {"int8", "i1"},
      {"f", "f4"},       {"d", "f8"},       {"B", "u1"},     {"b", "i1"},     {"float16", "f2"}, {"bool", "b1"}};
  std::string s = d;
  if (auto it = aliases.find(s); it != aliases.end()) s = it->second;
  char order = '=';
  if (!s.empty() && std::strchr("<>|=", s[0])) order = s[0], s.erase(0, 1);
  if (s.size() < 2 || !std::strchr("fiub?", s[0]) || s.size() > 3) return std::nullopt;
  for (size_t i = 1; i < s.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
  }
  int size = std::stoi(s.substr(1));
  Descr out{s[0], size, order == '>' && size > 1};
  bool read = (s[0] == 'f' && (size == 4 || size == 8)) || (s[0] == 'i' && (size == 1 || size == 4 || size == 8)) ||
              (s[0] == 'u' && size == 1);
  if (!read) out.kind = 0;
  if (s[0] == 'f' && size != 2 && size != 4 && size != 8 && size != 16) return std::nullopt;
  return out;
}

struct Reference {
  Verdict verdict = Verdict::kUnsure;
  std::string why;
  Descr descr{};
  kiln::Shape shape;
  size_t data_offset = 0;
  bool canonical = false;  // byte-for-byte what numpy writes, one of the six documented descrs
};

Reference reference(std::string_view b) {
  Reference r;
  try {
    if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0) throw Stop{Verdict::kInvalid, "bad magic"};
    int major = static_cast<unsigned char>(b[6]), minor = static_cast<unsigned char>(b[7]);
    if (major < 1 || major > 3 || minor != 0) throw Stop{Verdict::kInvalid, "format version not 1.0, 2.0 or 3.0"};
    size_t len_bytes = major == 1 ? 2 : 4;
    if (b.size() < 8 + len_bytes) throw Stop{Verdict::kInvalid, "truncated header length"};
    uint64_t hlen = 0;
    for (size_t i = 0; i < len_bytes; ++i) hlen |= uint64_t{static_cast<unsigned char>(b[8 + i])} << (8 * i);
    size_t start = 8 + len_bytes;
    if (hlen > b.size() - start) throw Stop{Verdict::kInvalid, "header longer than the file"};
    std::string_view header = b.substr(start, hlen);
    std::map<std::string, Value> d;
    Literal(header, major <= 2).dict_of_strings(d);
    if (d.size() != 3 || !d.count("descr") || !d.count("fortran_order") || !d.count("shape")) {
      throw Stop{Verdict::kInvalid, "header keys are not exactly descr, fortran_order, shape"};
    }
    const Value &dv = d["descr"], &fv = d["fortran_order"], &sv = d["shape"];
    if (fv.kind != Value::kBool) throw Stop{Verdict::kInvalid, "fortran_order is not a bool"};
    if (sv.kind != Value::kTuple) throw Stop{Verdict::kInvalid, "shape is not a tuple"};
    if (sv.items.size() > 64) throw Stop{Verdict::kInvalid, "more dims than numpy allows"};
    for (const Value& x : sv.items) {
      if (x.kind == Value::kBool) throw Stop{Verdict::kUnsure, "a bool dim (numpy takes it as an int)"};
      if (x.kind != Value::kInt) throw Stop{Verdict::kInvalid, "a dim that is not an int"};
      if (x.huge || x.integer < 0) throw Stop{Verdict::kInvalid, "a negative dim or one outside int64"};
      r.shape.push_back(x.integer);
    }
    if (dv.kind != Value::kStr) throw Stop{dv.kind == Value::kTuple ? Verdict::kUnsure : Verdict::kInvalid, "descr not a string"};
    auto descr = parse_descr(dv.str);
    if (!descr) throw Stop{Verdict::kUnsure, "descr '" + dv.str + "' is not modelled"};
    r.descr = *descr;
    if (descr->kind == 0) throw Stop{Verdict::kInvalid, "descr '" + dv.str + "' is not one npy.h reads"};
    if (descr->big_endian) throw Stop{Verdict::kInvalid, "big-endian descr '" + dv.str + "' (npy.h reads '<' only)"};
    // numpy refuses arrays whose non-zero dims times the item size overflow intp, even when
    // another dim is 0.
    int64_t nonzero = descr->size;
    bool empty = false;
    for (int64_t x : r.shape) {
      if (x != 0 && __builtin_mul_overflow(nonzero, x, &nonzero)) throw Stop{Verdict::kInvalid, "array is too big"};
      empty |= x == 0;
    }
    int64_t bytes = empty ? 0 : nonzero;
    if (static_cast<uint64_t>(bytes) > b.size() - start - hlen) throw Stop{Verdict::kInvalid, "data shorter than the shape"};
    int long_dims = 0;
    for (int64_t x : r.shape) long_dims += x > 1;
    if (fv.boolean && long_dims > 1) throw Stop{Verdict::kInvalid, "Fortran order (npy.h reads C order)"};
    r.data_offset = start + hlen;
    r.verdict = Verdict::kValid;

    std::string canon = "{'descr': '" + dv.str + "', 'fortran_order': False, 'shape': (";
    for (size_t i = 0; i < r.shape.size(); ++i) canon += (i ? ", " : "") + std::to_string(r.shape[i]);
    canon += r.shape.size() == 1 ? ",), }" : "), }";
    static const char* documented[] = {"<f4", "<i4", "|u1", "|i1", "<f8", "<i8"};
    bool doc = false;
    for (const char* x : documented) doc |= dv.str == x;
    std::string_view tail = header.substr(std::min(canon.size(), header.size()));
    // <f8 and <i8 are converted; values that do not fit f32/s32 may be refused.
    for (int64_t i = 0; descr->size == 8 && i * 8 < bytes; ++i) {
      const char* p = b.data() + start + hlen + 8 * i;
      double f;
      int64_t n;
      std::memcpy(&f, p, 8);
      std::memcpy(&n, p, 8);
      doc &= descr->kind == 'f' ? !(std::fabs(f) > std::numeric_limits<float>::max())
                                : n >= std::numeric_limits<int32_t>::min() && n <= std::numeric_limits<int32_t>::max();
    }
    r.canonical = doc && !fv.boolean && header.substr(0, canon.size()) == canon && !tail.empty() &&
                  tail.back() == '\n' && tail.find_first_not_of(' ') == tail.size() - 1 &&
                  static_cast<uint64_t>(bytes) == b.size() - r.data_offset;
  } catch (const Stop& s) {
    r.verdict = s.verdict;
    r.why = s.why;
  }
  return r;
}

void compare(const Reference& r, std::string_view b, const kiln::Tensor& t) {
  using kiln::DType;
  const Descr& d = r.descr;
  DType want = d.kind == 'f' ? DType::f32 : d.kind == 'u' ? DType::u8 : d.size == 1 ? DType::s8 : DType::s32;
  if (t.dtype() != want || t.shape() != r.shape) {
    return kiln::fuzz::bug(kFormat, "accepted as " + t.describe() + ", numpy reads " + kiln::dtype_name(want) +
                                        kiln::shape_str(r.shape));
  }
  const char* src = b.data() + r.data_offset;
  int64_t n = t.numel();
  if (d.size != 8) {
    if (t.nbytes() && std::memcmp(t.raw_data(), src, t.nbytes()) != 0) kiln::fuzz::bug(kFormat, "data bytes differ from the file's");
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (d.kind == 'f') {
      double v;
      std::memcpy(&v, src + 8 * i, 8);
      float got = t.data<float>()[i], expect = static_cast<float>(v);
      if (!(std::isnan(got) && std::isnan(expect)) && std::memcmp(&got, &expect, 4) != 0) {
        return kiln::fuzz::bug(kFormat, "<f8 element " + std::to_string(i) + " converted wrongly");
      }
    } else {
      int64_t v;
      std::memcpy(&v, src + 8 * i, 8);
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
        return kiln::fuzz::bug(kFormat, "accepted <i8 value " + std::to_string(v) + " that does not fit s32");
      }
      if (t.data<int32_t>()[i] != v) return kiln::fuzz::bug(kFormat, "<i8 element " + std::to_string(i) + " converted wrongly");
    }
  }
}

}  // namespace

int kiln_fuzz_npy(const uint8_t* data, size_t size) {
  using namespace kiln;
  const std::string source = "fuzz-input.npy";
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Tensor t;
  bool ok = fuzz::accepts(kFormat, source, [&] { t = data::parse_npy(bytes, source); });
  Reference ref = reference(bytes);
  if (!ok) {
    if (ref.canonical) fuzz::bug(kFormat, "rejected a file exactly as numpy writes it");
    return 0;
  }
  fuzz::check_tensor(kFormat, t);
  if (t.nbytes() > size) fuzz::bug(kFormat, "tensor holds more bytes than the file");
  if (ref.verdict == Verdict::kInvalid) fuzz::bug(kFormat, "silent accept: numpy rejects this file (" + ref.why + ")");
  if (ref.verdict == Verdict::kValid) compare(ref, bytes, t);
  return 1;
}
