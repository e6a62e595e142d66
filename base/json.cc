#include "base/json.h"

#include <charconv>
#include <set>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace kiln::base {

const char* kind_name(Json::Kind kind) {
  switch (kind) {
    case Json::Kind::null: return "null";
    case Json::Kind::boolean: return "a boolean";
    case Json::Kind::integer: return "an integer";
    case Json::Kind::number: return "a number";
    case Json::Kind::string: return "a string";
    case Json::Kind::list: return "a list";
    case Json::Kind::map: return "a map";
  }
  return "?";
}

namespace {
[[noreturn]] void wrong_kind(Json::Kind got, const char* want) {
  throw std::invalid_argument(std::string("config value is ") + kind_name(got) + ", expected " + want);
}
}  // namespace

void Json::throw_int_range() { throw std::invalid_argument("config integer does not fit in int64"); }

Json Json::list(std::vector<Json> items) {
  Json c;
  c.kind_ = Kind::list;
  c.items_ = std::move(items);
  return c;
}

Json Json::map() {
  Json c;
  c.kind_ = Kind::map;
  return c;
}

bool Json::as_bool() const {
  if (kind_ != Kind::boolean) wrong_kind(kind_, "a boolean");
  return bool_;
}

int64_t Json::as_int() const {
  if (kind_ != Kind::integer) wrong_kind(kind_, "an integer");
  return int_;
}

double Json::as_number() const {
  if (kind_ == Kind::integer) return static_cast<double>(int_);
  if (kind_ != Kind::number) wrong_kind(kind_, "a number");
  return number_;
}

const std::string& Json::as_string() const {
  if (kind_ != Kind::string) wrong_kind(kind_, "a string");
  return string_;
}

const std::vector<Json>& Json::items() const {
  if (kind_ != Kind::list && kind_ != Kind::map) wrong_kind(kind_, "a list or a map");
  return items_;
}

const std::vector<std::string>& Json::keys() const {
  if (kind_ != Kind::map) wrong_kind(kind_, "a map");
  return keys_;
}

size_t Json::size() const { return items().size(); }

Json& Json::set(const std::string& key, Json value) {
  if (kind_ != Kind::map) wrong_kind(kind_, "a map");
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i] == key) {
      items_[i] = std::move(value);
      return *this;
    }
  }
  keys_.push_back(key);
  items_.push_back(std::move(value));
  return *this;
}

const Json* Json::find(const std::string& key) const {
  if (kind_ != Kind::map) wrong_kind(kind_, "a map");
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i] == key) return &items_[i];
  }
  return nullptr;
}

bool Json::has(const std::string& key) const { return find(key) != nullptr; }

const Json& Json::at(const std::string& key) const {
  const Json* v = find(key);
  if (!v) throw std::invalid_argument("config has no key '" + key + "'");
  return *v;
}

Json& Json::push_back(Json value) {
  if (kind_ != Kind::list) wrong_kind(kind_, "a list");
  items_.push_back(std::move(value));
  return *this;
}

const Json& Json::operator[](size_t i) const {
  if (kind_ != Kind::list) wrong_kind(kind_, "a list");
  if (i >= items_.size()) {
    throw std::invalid_argument("config list index " + std::to_string(i) + " out of range (size " +
                                std::to_string(items_.size()) + ")");
  }
  return items_[i];
}

bool Json::operator==(const Json& o) const {
  if (kind_ != o.kind_) return false;
  switch (kind_) {
    case Kind::null: return true;
    case Kind::boolean: return bool_ == o.bool_;
    case Kind::integer: return int_ == o.int_;
    // Bitwise, so that NaN equals itself and 0.0 differs from -0.0: a round trip must be exact.
    case Kind::number: return std::memcmp(&number_, &o.number_, sizeof number_) == 0;
    case Kind::string: return string_ == o.string_;
    case Kind::list: return items_ == o.items_;
    case Kind::map: return keys_ == o.keys_ && items_ == o.items_;
  }
  return false;
}

// --- writer ---

namespace {

// Length of the UTF-8 sequence starting at s[i], or 0 when it is not a valid one (overlong
// forms, surrogates and code points above U+10FFFF are invalid, as RFC 3629 says).
size_t utf8_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
  else return 0;
  if (s.size() - i < n) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  return n;
}

void write_string(std::string& out, const std::string& s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = utf8_length(s, i);
      if (n == 0) throw std::invalid_argument("config string is not valid UTF-8 at byte " + std::to_string(i));
      out.append(s, i, n);
      i += n;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

void write_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "Infinity" : "-Infinity";
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  std::string_view s(buf, res.ptr - buf);
  out += s;
  if (s.find_first_of(".eE") == std::string_view::npos) out += ".0";  // stays a number, not an integer
}

void newline(std::string& out, int indent, int depth) {
  if (indent < 0) return;
  out += '\n';
  out.append(static_cast<size_t>(indent) * depth, ' ');
}

}  // namespace

void Json::write(std::string& out, int indent, int depth) const {
  const char* sep = indent < 0 ? ", " : ",";
  switch (kind_) {
    case Kind::null: out += "null"; return;
    case Kind::boolean: out += bool_ ? "true" : "false"; return;
    case Kind::integer: out += std::to_string(int_); return;
    case Kind::number: write_number(out, number_); return;
    case Kind::string: write_string(out, string_); return;
    case Kind::list:
      out += '[';
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i) out += sep;
        newline(out, indent, depth + 1);
        items_[i].write(out, indent, depth + 1);
      }
      if (!items_.empty()) newline(out, indent, depth);
      out += ']';
      return;
    case Kind::map:
      out += '{';
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i) out += sep;
        newline(out, indent, depth + 1);
        write_string(out, keys_[i]);
        out += ": ";
        items_[i].write(out, indent, depth + 1);
      }
      if (!items_.empty()) newline(out, indent, depth);
      out += '}';
      return;
  }
}

std::string Json::to_json(int indent) const {
  std::string out;
  write(out, indent, 0);
  return out;
}

// --- strict parser ---

class JsonParser {
 public:
  JsonParser(std::string_view text, const std::string& source) : s_(text), source_(source) {}

  Json document() {
    skip_space();
    Json v = value(0);
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { fail_at(what, pos_); }
  [[noreturn]] void fail_at(const std::string& what, size_t at) const {
    throw std::runtime_error("config '" + source_ + "': " + what + " at byte " + std::to_string(at));
  }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }

  void skip_space() {
    while (!at_end() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  void expect(char c, const char* what) {
    if (at_end()) fail(std::string("unexpected end of input, expected ") + what);
    if (s_[pos_] != c) fail(std::string("expected ") + what);
    ++pos_;
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Json value(int depth) {
    if (at_end()) fail("unexpected end of input, expected a value");
    char c = s_[pos_];
    if (c == '{' || c == '[') {
      if (depth >= kMaxJsonDepth) fail("nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels");
      return c == '{' ? object(depth + 1) : array(depth + 1);
    }
    if (c == '"') return Json(string());
    if (literal("true")) return Json(true);
    if (literal("false")) return Json(false);
    if (literal("null")) return Json();
    if (literal("NaN")) return Json(std::nan(""));
    if (literal("Infinity")) return Json(HUGE_VAL);
    if (literal("-Infinity")) return Json(-HUGE_VAL);
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    fail("unexpected character " + describe(c));
  }

  static std::string describe(char c) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F) return std::string("'") + c + "'";
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02x", u);
    return buf;
  }

  Json object(int depth) {
    ++pos_;  // '{'
    Json m = Json::map();
    std::set<std::string> seen;
    skip_space();
    if (peek() == '}') {
      ++pos_;
      return m;
    }
    for (;;) {
      skip_space();
      size_t key_at = pos_;
      if (peek() != '"') fail(at_end() ? "unexpected end of input, expected a key" : "expected a string key");
      std::string key = string();
      if (!seen.insert(key).second) fail_at("duplicate key '" + key + "'", key_at);
      skip_space();
      expect(':', "':' after a key");
      skip_space();
      Json v = value(depth);
      m.keys_.push_back(std::move(key));  // unique: checked above, without set()'s linear scan
      m.items_.push_back(std::move(v));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect('}', "',' or '}' in a map");
      return m;
    }
  }

  Json array(int depth) {
    ++pos_;  // '['
    std::vector<Json> items;
    skip_space();
    if (peek() == ']') {
      ++pos_;
      return Json::list(std::move(items));
    }
    for (;;) {
      skip_space();
      items.push_back(value(depth));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect(']', "',' or ']' in a list");
      return Json::list(std::move(items));
    }
  }

  uint32_t hex4() {
    if (s_.size() - pos_ < 4) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else fail_at("bad hex digit in a \\u escape", pos_ - 1);
    }
    return v;
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string string() {
    size_t start = pos_;
    ++pos_;  // '"'
    std::string out;
    for (;;) {
      if (at_end()) fail_at("unterminated string", start);
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("raw control character " + describe(static_cast<char>(c)) + " in a string");
      if (c >= 0x80) {
        size_t n = utf8_length(s_, pos_);
        if (n == 0) fail("invalid UTF-8 in a string");
        out.append(s_.data() + pos_, n);
        pos_ += n;
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        ++pos_;
        continue;
      }
      size_t esc_at = pos_++;
      if (at_end()) fail_at("unterminated escape", esc_at);
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at("lone low surrogate in a \\u escape", esc_at);
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(pos_, 2) != "\\u") fail_at("high surrogate without its low half", esc_at);
            pos_ += 2;
            uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail_at("high surrogate without its low half", esc_at);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: fail_at("unknown escape \\" + describe(e), esc_at);
      }
    }
  }

  Json number() {
    size_t start = pos_;
    auto digits = [&] {
      size_t from = pos_;
      while (!at_end() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
      if (!at_end() && s_[pos_] >= '0' && s_[pos_] <= '9') fail_at("number with a leading zero", start);
    } else if (digits() == 0) {
      fail_at("malformed number", start);
    }
    bool is_int = true;
    if (peek() == '.') {
      ++pos_;
      is_int = false;
      if (digits() == 0) fail_at("malformed number (no digits after '.')", start);
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      is_int = false;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (digits() == 0) fail_at("malformed number (no digits in the exponent)", start);
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    if (is_int) {
      int64_t v = 0;
      auto r = std::from_chars(first, last, v);
      if (r.ec != std::errc() || r.ptr != last) fail_at("integer out of the int64 range", start);
      return Json(v);
    }
    double d = 0;
    auto r = std::from_chars(first, last, d);
    if (r.ec != std::errc() || r.ptr != last || !std::isfinite(d)) fail_at("number out of the double range", start);
    return Json(d);
  }

  std::string_view s_;
  const std::string& source_;
  size_t pos_ = 0;
};

Json parse_json(std::string_view text, const std::string& source) {
  return JsonParser(text, source).document();
}

}  // namespace kiln::base
