#pragma once
// Running ONNX files outside Kiln from tests: Debian's onnx.checker (/usr/bin/python3,
// python3-onnx) and ONNX Runtime (the repo's .venv that scripts/setup makes), both through
// scripts/onnx_check.py. Tests using it are tagged "local" (unsandboxed), so the runfiles link
// to the script resolves into the source tree where .venv lives.
#include <optional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace kiln::testing {

// onnx.checker.check_model(full_check=True); returns its output, and fails the test when it
// rejects the model.
std::string onnx_checker(const std::string& model_path);
// Runs the model in ONNX Runtime (CPU, 2 threads) on the inputs; nullopt (and a test failure
// naming scripts/setup) when the venv or onnxruntime is missing or the run fails.
std::optional<std::vector<Tensor>> run_onnx_runtime(const std::string& model_path, const std::vector<Tensor>& inputs);

}  // namespace kiln::testing
