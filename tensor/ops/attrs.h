#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "tensor/ops/op_kind.h"

namespace kiln::ops {

// One attribute value of an op call. Each op's typed attribute struct (tensor/ops/op_attrs.h)
// parses and writes this form, which graphs print, save and load and ONNX tables read; code
// outside the serializers reads the typed struct.
using AttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;

// The attributes of one op call, in the order the op wrote them. Getters throw
// std::invalid_argument naming the op and the attribute when it is missing or of another type.
class Attrs {
 public:
  Attrs() = default;
  // An unregistered name is kept (a loaded graph may name one); kind() then throws.
  explicit Attrs(std::string op) : op_(std::move(op)), kind_(op_kind_from_name(op_)) {}
  explicit Attrs(OpKind kind) : op_(op_kind_name(kind)), kind_(kind) {}

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
  void set_op(const std::string& op) {
    op_ = op;
    kind_ = op_kind_from_name(op_);
  }
  // The registered kind; throws std::invalid_argument naming the op when it is not one.
  OpKind kind() const;
  bool is(OpKind kind) const { return kind_ == kind; }
  bool registered() const { return kind_.has_value(); }
  // "strides=[1, 1], padding='same'"
  std::string to_string() const;
  bool operator==(const Attrs& other) const { return items_ == other.items_; }

 private:
  const AttrValue& find(const std::string& name, const char* want) const;
  std::string op_;
  std::optional<OpKind> kind_;
  std::vector<std::pair<std::string, AttrValue>> items_;
};

std::string attr_value_string(const AttrValue& v);

}  // namespace kiln::ops
