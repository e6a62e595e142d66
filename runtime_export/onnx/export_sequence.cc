// The sequence ops as ONNX nodes: gather (Gather) and layer_norm (opset 17's
// LayerNormalization). Both act on plain (NHWC-free) values.
#include "runtime_export/onnx/exporter.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::onnx_io {

void Exporter::write_gather(const Node& n) {
  const int table = n.inputs[0], indices = n.inputs[1], y = n.outputs[0];
  const int64_t axis = axis_of(ops::parse_attrs_of<ops::OpKind::gather>(n.call).axis, rank(table));
  // ONNX Gather also takes negative indices (from the end), which Kiln refuses; Kiln's indices
  // are already checked to be in [0, rows), so the exported graph computes the same.
  set_attr(emit("Gather", {native(table), native(indices)}, {out(y, false)}), "axis", axis);
}

void Exporter::write_layer_norm(const Node& n) {
  const ops::LayerNormAttrs ln = ops::parse_attrs_of<ops::OpKind::layer_norm>(n.call);
  const int x = n.inputs[0], y = n.outputs[0];
  auto* node = emit("LayerNormalization", {native(x), native(n.inputs[1]), native(n.inputs[2])}, {out(y, false)});
  set_attr(node, "axis", int64_t{-1});
  set_attr(node, "epsilon", static_cast<float>(ln.epsilon));
}

}  // namespace kiln::runtime_export::onnx_io
