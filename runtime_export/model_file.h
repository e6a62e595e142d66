#pragma once
#include <memory>
#include <string>

#include "runtime_export/inference_model.h"

namespace kiln::runtime_export {

// An InferenceModel (f32, bf16 or int8) on disk: its optimized graph in Kiln's graph file
// (graph/graph_io.h: versioned, CRC-checked, written atomically, validated in full on load
// and fuzzed) followed by nothing else; int8 models carry their scales in the quantized
// nodes' attributes. The bf16 option is not part of the graph: pass it again on load.
void save_inference_model(const InferenceModel& model, const std::string& path);
// Throws std::runtime_error naming the file for anything unreadable; a failed load returns
// nothing and changes nothing.
std::unique_ptr<InferenceModel> load_inference_model(const std::string& path, const InferenceOptions& options = {});

}  // namespace kiln::runtime_export
