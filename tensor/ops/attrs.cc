#include "tensor/ops/attrs.h"

#include <cstdio>
#include <stdexcept>

namespace kiln::ops {

Attrs& Attrs::set(const std::string& name, AttrValue value) {
  for (auto& [n, v] : items_) {
    if (n == name) {
      v = std::move(value);
      return *this;
    }
  }
  items_.emplace_back(name, std::move(value));
  return *this;
}

OpKind Attrs::kind() const {
  if (!kind_) throw std::invalid_argument("op '" + op_ + "' is not a registered op kind");
  return *kind_;
}

bool Attrs::has(const std::string& name) const {
  for (const auto& [n, v] : items_) {
    if (n == name) return true;
  }
  return false;
}

const AttrValue& Attrs::find(const std::string& name, const char* want) const {
  for (const auto& [n, v] : items_) {
    if (n == name) return v;
  }
  throw std::invalid_argument((op_.empty() ? std::string("op") : op_) + ": missing attribute '" + name + "' (" +
                              want + ")");
}

namespace {
template <typename T>
const T& typed(const AttrValue& v, const std::string& op, const std::string& name, const char* want) {
  if (const T* p = std::get_if<T>(&v)) return *p;
  throw std::invalid_argument((op.empty() ? std::string("op") : op) + ": attribute '" + name + "' is " +
                              attr_value_string(v) + ", expected " + want);
}
}  // namespace

int64_t Attrs::get_int(const std::string& name) const { return typed<int64_t>(find(name, "int"), op_, name, "an int"); }
double Attrs::get_float(const std::string& name) const {
  const AttrValue& v = find(name, "float");
  if (const int64_t* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  return typed<double>(v, op_, name, "a float");
}
const std::string& Attrs::get_string(const std::string& name) const {
  return typed<std::string>(find(name, "string"), op_, name, "a string");
}
const std::vector<int64_t>& Attrs::get_ints(const std::string& name) const {
  return typed<std::vector<int64_t>>(find(name, "ints"), op_, name, "a list of ints");
}
const std::vector<double>& Attrs::get_floats(const std::string& name) const {
  return typed<std::vector<double>>(find(name, "floats"), op_, name, "a list of floats");
}

std::string attr_value_string(const AttrValue& v) {
  auto num = [](double d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", d);
    return std::string(buf);
  };
  if (const int64_t* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (const double* d = std::get_if<double>(&v)) return num(*d);
  if (const std::string* s = std::get_if<std::string>(&v)) return "'" + *s + "'";
  std::string out = "[";
  if (const auto* is = std::get_if<std::vector<int64_t>>(&v)) {
    for (size_t k = 0; k < is->size(); ++k) out += (k ? ", " : "") + std::to_string((*is)[k]);
  } else {
    const auto& ds = std::get<std::vector<double>>(v);
    for (size_t k = 0; k < ds.size(); ++k) out += (k ? ", " : "") + num(ds[k]);
  }
  return out + "]";
}

std::string Attrs::to_string() const {
  std::string out;
  for (const auto& [n, v] : items_) out += (out.empty() ? "" : ", ") + n + "=" + attr_value_string(v);
  return out;
}

}  // namespace kiln::ops
