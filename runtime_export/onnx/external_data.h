#pragma once
// ONNX external data: a model saved with onnx.save_model(..., save_as_external_data=True) keeps
// its tensors' bytes in side files named by each TensorProto's external_data entries.
#include <string>

#include "runtime_export/onnx/onnx_tensor.h"

namespace kiln::runtime_export::onnx_io {

// Reads every external tensor of `model` (initializers and Constant node values) into its
// raw_data, from `location` resolved under `model_dir` (offset, length: optional decimal bytes;
// checksum is not verified). Refuses, naming the tensor, the location and `source`: an empty
// `model_dir` (the bytes came from memory), an absolute location or one with "..", a missing
// or non-regular file (symlinks placed in the directory are followed), unknown keys, an
// offset or length past the end of the file, and a length other than the tensor's dims need.
void load_external_data(onnx::ModelProto& model, const std::string& model_dir);

}  // namespace kiln::runtime_export::onnx_io
