#pragma once
#include <string>
#include <vector>

#include "graph/graph.h"
#include "tensor/ops/op_kind.h"
#include "tensor/ops/support.h"
#include "tensor/tensor.h"

namespace kiln::nn {
class Model;
}

namespace kiln::runtime_export {

struct OnnxExportOptions {
  int opset = 17;  // the only one written: what Debian's python3-onnx 1.12 checks and ONNX Runtime runs
  std::string producer_name = "kiln";
  std::string producer_version = "0.1";
  std::string graph_name = "kiln_graph";
};

// Writes an ONNX model (IR version 8, default domain at opset 17) of a traced Graph.
//   - Dimension 0 of the inputs and outputs is the symbolic batch (dim_param "batch").
//   - Input, output and variable names are kept (a name ONNX would choke on, such as an empty
//     one, is replaced); variables become initializers named after them.
//   - Inputs and outputs stay NHWC, as in Kiln and Keras. Inside, a Transpose to NCHW goes in
//     front of the first Conv/MaxPool/AveragePool/BatchNormalization and values stay NCHW
//     through element-wise ops, axis ops (axes remapped) and further convolutions; a Transpose
//     back goes only where an op needs Kiln's layout (reshape/flatten before a Dense, matmul,
//     permute) and at the outputs. Conv weights are stored OIHW; 'same' padding is written as
//     the explicit pads Keras/TensorFlow use for the traced spatial size (exact, unlike
//     auto_pad=SAME_UPPER when the stride does not divide the size).
//   - Fused nodes expand to Conv/Gemm + Add + activation; GELU (no ONNX op before opset 20)
//     is written out in its erf or tanh form.
//   - A bf16 graph is written as fp32 (ONNX Runtime takes no bf16 inputs), with a warning on
//     stderr.
// Throws std::invalid_argument naming the node index, op and output for an op or attribute
// with no ONNX equivalent. The file is written atomically (temporary file, then rename).
void export_onnx(const graph::Graph& graph, const std::string& path, const OnnxExportOptions& options = {});
// What export_onnx writes for each op kind (the ONNX ops), or why it cannot.
ops::Support onnx_export_support(ops::OpKind kind);
// The serialized ModelProto, as export_onnx writes it.
std::string serialize_onnx(const graph::Graph& graph, const OnnxExportOptions& options = {});
// Traces one inference forward of the model on the samples (graph::trace), then exports it.
void export_onnx(nn::Model& model, const std::vector<Tensor>& sample_inputs, const std::string& path,
                 const OnnxExportOptions& options = {});

}  // namespace kiln::runtime_export
