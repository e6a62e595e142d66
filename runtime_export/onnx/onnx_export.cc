#include "runtime_export/onnx/onnx_export.h"

#include <cstdio>
#include <stdexcept>

#include "base/files.h"
#include "graph/trace.h"
#include "runtime_export/onnx/exporter.h"

namespace kiln::runtime_export {
namespace {

constexpr int kIrVersion = 8;
constexpr int kOpset = 17;

}  // namespace

std::string serialize_onnx(const graph::Graph& graph, const OnnxExportOptions& options) {
  if (options.opset != kOpset) {
    throw std::invalid_argument("export_onnx: opset " + std::to_string(options.opset) + " is not supported; Kiln writes opset " +
                                std::to_string(kOpset));
  }
  graph.validate();
  onnx::ModelProto model;
  model.set_ir_version(kIrVersion);
  model.set_producer_name(options.producer_name);
  model.set_producer_version(options.producer_version);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  auto* gp = model.mutable_graph();
  gp->set_name(options.graph_name);
  onnx_io::Exporter exporter(graph, gp);
  exporter.run();
  if (exporter.wrote_bf16()) {
    std::fprintf(stderr, "export_onnx: warning: bf16 values are written as fp32 (ONNX Runtime takes no bf16 inputs)\n");
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw std::runtime_error("export_onnx: protobuf serialization failed");
  return bytes;
}

void export_onnx(const graph::Graph& graph, const std::string& path, const OnnxExportOptions& options) {
  base::write_file_atomically(path, serialize_onnx(graph, options));
}

void export_onnx(nn::Model& model, const std::vector<Tensor>& sample_inputs, const std::string& path,
                 const OnnxExportOptions& options) {
  export_onnx(graph::trace(model, sample_inputs), path, options);
}

}  // namespace kiln::runtime_export
