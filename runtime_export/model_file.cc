#include "runtime_export/model_file.h"

#include "graph/graph_io.h"

namespace kiln::runtime_export {

void save_inference_model(const InferenceModel& model, const std::string& path) {
  graph::save_graph(model.inference_graph(), path);
}

std::unique_ptr<InferenceModel> load_inference_model(const std::string& path, const InferenceOptions& options) {
  InferenceOptions o = options;
  o.optimize = false;  // saved graphs are already optimized (and quantized graphs must stay as they are)
  return std::make_unique<InferenceModel>(graph::load_graph(path), o);
}

}  // namespace kiln::runtime_export
