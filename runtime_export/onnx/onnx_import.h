#pragma once
#include <string>
#include <string_view>

#include "graph/graph.h"
#include "tensor/ops/op_kind.h"
#include "tensor/ops/support.h"

namespace kiln::runtime_export {

// Reads an ONNX model that export_onnx or another exporter (torch.onnx.export, TorchScript or
// dynamo) wrote into a Graph whose outputs equal the original's: IR version <= 10, the default
// domain at opsets 11 to 21 (each op read with its opset's semantics), weights inline or in
// external data files beside the model, and the node patterns the
// exporter writes (Conv/Gemm/MatMul + Add + activation, GELU in erf or tanh form,
// Clip + Cast for saturating casts, comparisons and ArgMax followed by a Cast). Transposes are folded
// into the values they permute, so NHWC -> NCHW -> NHWC pairs cancel and Conv weights come back
// HWIO under their initializer's name.
// Strict: a truncated or corrupt file, an unknown op, another opset, an attribute Kiln cannot
// honour, inconsistent shapes or dtypes, or initializer data that does not match its dims
// (checked before anything is allocated) throws std::invalid_argument naming the file and the
// problem. The result has passed Graph::validate().
graph::Graph import_onnx(const std::string& path);
// Which ONNX ops import_onnx turns into each op kind, or why it never makes that kind.
ops::Support onnx_import_support(ops::OpKind kind);
// The same over bytes in memory; `source` names them in errors. External data is read from
// `model_dir` (import_onnx passes the model file's directory); with none it is refused.
graph::Graph parse_onnx(std::string_view bytes, const std::string& source, const std::string& model_dir = "");

}  // namespace kiln::runtime_export
