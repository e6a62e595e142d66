#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace kiln::ops {

// One attribute value of an op call. Typed attribute structs (Conv2dAttrs, Pool2dAttrs,
// ...) convert to and from this form, which graphs print, save and load.
using AttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;

// The attributes of one op call, in the order the op wrote them. Getters throw
// std::invalid_argument naming the op and the attribute when it is missing or of another type.
class Attrs {
 public:
  Attrs() = default;
  explicit Attrs(std::string op) : op_(std::move(op)) {}

  Attrs& set(const std::string& name, AttrValue value);
  Attrs& set(const std::string& name, int value) { return set(name, AttrValue(int64_t{value})); }
  Attrs& set(const std::string& name, float value) { return set(name, AttrValue(double{value})); }
  Attrs& set(const std::string& name, bool value) { return set(name, AttrValue(int64_t{value})); }
  Attrs& set(const std::string& name, const char* value) { return set(name, AttrValue(std::string(value))); }

  bool has(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  double get_float(const std::string& name) const;
  const std::string& get_string(const std::string& name) const;
  const std::vector<int64_t>& get_ints(const std::string& name) const;
  const std::vector<double>& get_floats(const std::string& name) const;

  const std::vector<std::pair<std::string, AttrValue>>& items() const { return items_; }
  const std::string& op() const { return op_; }
  void set_op(const std::string& op) { op_ = op; }
  // "strides=[1, 1], padding='same'"
  std::string to_string() const;
  bool operator==(const Attrs& other) const { return items_ == other.items_; }

 private:
  const AttrValue& find(const std::string& name, const char* want) const;
  std::string op_;
  std::vector<std::pair<std::string, AttrValue>> items_;
};

std::string attr_value_string(const AttrValue& v);

}  // namespace kiln::ops
