#include "tensor/ops/op_kind.h"

#include <unordered_map>

namespace kiln::ops {

const char* op_kind_name(OpKind kind) {
  switch (kind) {
#define KILN_OP_NAME(name, ...) \
  case OpKind::name:            \
    return #name;
    KILN_OPS(KILN_OP_NAME)
#undef KILN_OP_NAME
  }
  return "?";
}

const char* op_attrs_name(OpKind kind) {
  switch (kind) {
#define KILN_OP_ATTRS_NAME(name, attrs, ...) \
  case OpKind::name:                        \
    return #attrs;
    KILN_OPS(KILN_OP_ATTRS_NAME)
#undef KILN_OP_ATTRS_NAME
  }
  return "?";
}

std::optional<OpKind> op_kind_from_name(const std::string& name) {
  static const auto* index = [] {
    auto* m = new std::unordered_map<std::string, OpKind>();
    for (OpKind k : all_op_kinds()) m->emplace(op_kind_name(k), k);
    return m;
  }();
  auto it = index->find(name);
  if (it == index->end()) return std::nullopt;
  return it->second;
}

const std::vector<OpKind>& all_op_kinds() {
  static const std::vector<OpKind> kinds = {
#define KILN_OP_LISTED(name, ...) OpKind::name,
      KILN_OPS(KILN_OP_LISTED)
#undef KILN_OP_LISTED
  };
  return kinds;
}

}  // namespace kiln::ops
