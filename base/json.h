#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace kiln::base {

// A JSON value: what Keras's get_config() returns and what a saved model stores as its
// architecture. Maps keep their keys in insertion order (so a written file is stable) and
// reject duplicates. Integers and floating numbers stay distinct kinds: a layer's `units`
// reads back as the integer it was, a float option as the exact float it was.
class Json {
 public:
  enum class Kind : uint8_t { null, boolean, integer, number, string, list, map };

  Json() = default;  // null
  Json(std::nullptr_t) {}  // NOLINT: the values below convert implicitly, like JSON literals
  Json(bool v) : kind_(Kind::boolean), bool_(v) {}  // NOLINT
  template <typename T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Json(T v) : kind_(Kind::integer), int_(checked_int(v)) {}  // NOLINT
  Json(double v) : kind_(Kind::number), number_(v) {}  // NOLINT: a float converts exactly
  Json(const char* v) : kind_(Kind::string), string_(v) {}  // NOLINT
  Json(std::string v) : kind_(Kind::string), string_(std::move(v)) {}  // NOLINT
  static Json list(std::vector<Json> items = {});
  static Json map();
  // [a, b] for kernel sizes, strides and the like.
  static Json pair(const std::array<int64_t, 2>& v) { return list({v[0], v[1]}); }

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::null; }
  bool is_map() const { return kind_ == Kind::map; }
  bool is_list() const { return kind_ == Kind::list; }
  // Typed access; each throws std::invalid_argument naming the kind found. as_number()
  // also takes an integer (JSON writes 1.0 as 1 in many producers).
  bool as_bool() const;
  int64_t as_int() const;
  double as_number() const;
  const std::string& as_string() const;
  const std::vector<Json>& items() const;  // a list's items or a map's values
  const std::vector<std::string>& keys() const;  // a map's keys, in order
  size_t size() const;  // items in a list or a map

  // Map access. set() appends a new key or replaces an existing key's value; chainable.
  Json& set(const std::string& key, Json value);
  bool has(const std::string& key) const;
  const Json* find(const std::string& key) const;
  const Json& at(const std::string& key) const;  // throws naming the key
  // List access.
  Json& push_back(Json value);
  const Json& operator[](size_t i) const;

  bool operator==(const Json& other) const;
  bool operator!=(const Json& other) const { return !(*this == other); }

  // JSON text: compact (`indent` < 0) or indented by `indent` spaces. Floating numbers use the
  // shortest form that reads back to the same double; NaN and infinities are written NaN,
  // Infinity and -Infinity, as Python's json module does. Throws for a string that is not
  // valid UTF-8.
  std::string to_json(int indent = -1) const;

 private:
  friend class JsonParser;
  template <typename T>
  static int64_t checked_int(T v) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(int64_t)) {
      if (v > static_cast<T>(INT64_MAX)) throw_int_range();
    }
    return static_cast<int64_t>(v);
  }
  [[noreturn]] static void throw_int_range();
  void write(std::string& out, int indent, int depth) const;

  Kind kind_ = Kind::null;
  bool bool_ = false;
  int64_t int_ = 0;
  double number_ = 0;
  std::string string_;
  std::vector<Json> items_;
  std::vector<std::string> keys_;  // a map's keys, parallel to items_
};

const char* kind_name(Json::Kind kind);

// The strict reader for JSON text from outside (a saved model is a loader: docs/architecture.md "Safety").
// RFC 8259 plus Python's NaN/Infinity/-Infinity; rejects duplicate keys, invalid UTF-8, raw
// control characters in strings, lone surrogates, numbers out of range, nesting deeper than
// kMaxJsonDepth and anything after the value. Errors are std::runtime_error naming `source`
// and the byte offset. Memory use is linear in the input.
constexpr int kMaxJsonDepth = 128;
Json parse_json(std::string_view text, const std::string& source);

}  // namespace kiln::base
