#pragma once
// The models torch.onnx.export wrote into tests/data/foreign_onnx (make_models.py), for the
// tests that take every one of them through quant::quantize and export_onnx: which files,
// their inputs and PyTorch's outputs, the imported graphs (imported once per test binary) and
// deterministic extra inputs of the same kind for calibration and evaluation.
#include <string>
#include <vector>

#include "graph/graph.h"
#include "tensor/tensor.h"

namespace kiln::testing {

// "NAME.VARIANT" (NAME.VARIANT.onnx), or "NAME" for NAME.onnx. The QDQ files are int8 already
// and left out.
std::vector<std::string> foreign_model_files();
// Whether the file is the one variant of its model that tests run in ONNX Runtime: the variants
// import to the same graph, and each ONNX Runtime run costs a Python start-up.
bool runs_in_onnx_runtime(const std::string& file);
// NAME of a file: the prefix before the first '.'.
std::string foreign_model_name(const std::string& file);
// The inputs make_models.py saved (NAME.input.npy, or NAME.input0.npy, NAME.input1.npy, ...).
std::vector<Tensor> foreign_inputs(const std::string& file);
// PyTorch's output on them.
Tensor foreign_output(const std::string& file);
// import_onnx of the file; each file is imported once per process.
const graph::Graph& foreign_graph(const std::string& file);
// `batch` examples the graph's inputs accept, from `seed`: images N(0, 1) as make_models.py
// draws them; a BERT's token ids uniform over its vocabulary of 50 with attention masks whose
// padded tails differ by row. A file with a fixed batch takes only that batch.
std::vector<Tensor> generated_inputs(const std::string& file, int64_t batch, uint64_t seed);
// The largest |element|.
double max_abs(const Tensor& t);
// A gtest parameter name for a file ("convnext.opset17" -> "convnext_opset17").
std::string test_name(const std::string& file);

}  // namespace kiln::testing
