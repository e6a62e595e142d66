#pragma once
#include <optional>
#include <string>
#include <vector>

#include "tensor/ops/op_list.h"

namespace kiln::ops {

// Every registered op kind, from the one list in op_list.h. Code that treats kinds
// differently switches on OpKind (no default, -Werror=switch), so that adding a kind makes the
// compiler name every place that has not decided about it.
enum class OpKind {
#define KILN_OP_ENUMERATOR(name, ...) name,
  KILN_OPS(KILN_OP_ENUMERATOR)
#undef KILN_OP_ENUMERATOR
};

// The registered name ("conv2d"): what graphs, tapes and ONNX files' Kiln side spell.
const char* op_kind_name(OpKind kind);
// The kind a name registers, or nullopt.
std::optional<OpKind> op_kind_from_name(const std::string& name);
// The name of its typed attribute struct ("Conv2dAttrs", op_attrs.h).
const char* op_attrs_name(OpKind kind);
// Every kind, in the list's order.
const std::vector<OpKind>& all_op_kinds();

}  // namespace kiln::ops
