// where, the logical ops and erf as ONNX nodes. Kiln's booleans are 1/0 in a float dtype,
// ONNX's are BOOL: a Cast to BOOL before Where, Not, And and Or (nonzero is true, as Kiln
// reads them), and a Cast back to the value's dtype after the logical ops.
#include "runtime_export/onnx/exporter.h"

namespace kiln::runtime_export::onnx_io {

void Exporter::write_logical(const Node& n) {
  using K = ops::OpKind;
  const int y = n.outputs[0];
  const bool as_nchw = stays_nchw(n.inputs, y);
  auto as_bool = [&](int v) {
    std::string b = tmp(name_[v] + "_bool");
    set_attr(emit("Cast", {in(v, as_nchw)}, {b}), "to", int64_t{onnx::TensorProto::BOOL});
    return b;
  };
  const K kind = n.call.kind();
  if (kind == K::erf) {
    emit("Erf", {in(n.inputs[0], as_nchw)}, {out(y, as_nchw)});
    return;
  }
  if (kind == K::where) {
    std::string cond = as_bool(n.inputs[0]);
    emit("Where", {cond, in(n.inputs[1], as_nchw), in(n.inputs[2], as_nchw)}, {out(y, as_nchw)});
    return;
  }
  std::vector<std::string> ins;
  for (int v : n.inputs) ins.push_back(as_bool(v));
  const char* op = kind == K::logical_not ? "Not" : kind == K::logical_and ? "And" : kind == K::logical_or ? "Or" : nullptr;
  if (!op) fail("not a logical op");
  std::string result = tmp(name_[y] + "_bool");
  emit(op, ins, {result});
  set_attr(emit("Cast", {result}, {out(y, as_nchw)}), "to", int64_t{onnx_elem_type(val(y).dtype)});
}

}  // namespace kiln::runtime_export::onnx_io
