// One model through every inference path: trace it into a Graph (printed, saved, loaded), run
// it in the fused InferenceModel (f32 and bf16, saved and loaded), and round-trip it through
// ONNX. Fails (exit 1) when a path disagrees with Model::predict.
#include <cstdio>
#include <filesystem>
#include <string>

#include "kiln.h"

int main() {
  using namespace kiln;
  using namespace kiln::nn;
  const std::string dir = std::filesystem::temp_directory_path().string();
  set_global_seed(7);

  // A functional model with a residual block: Conv2D -> BatchNorm -> Add -> ReLU -> pooling -> Dense.
  Conv2DOptions same;
  same.padding = "same";
  SymbolicTensor in = Input({16, 16, 8});
  SymbolicTensor h = Conv2D(8, 3, "", same)(in);
  h = BatchNormalization()(h);
  h = Activation("relu")(Add()({h, in}));
  SymbolicTensor out = Dense(10)(GlobalAveragePooling2D()(h));
  Model model(in, out, "residual_net");

  Tensor x = random_normal({64, 16, 16, 8}, 0, 1, /*seed=*/1);
  Tensor expected = model.predict(x);
  bool ok = true;
  auto check = [&](const char* path, const Tensor& y, float tolerance) {
    float diff = reduce_max(abs(y - expected)).item();
    std::printf("%-30s max |difference| from Model::predict %.2g\n", path, diff);
    ok = ok && diff <= tolerance;
  };

  graph::Graph g = graph::trace(model, slice(x, 0, 0, 2));   // dimension 0 stays symbolic
  std::printf("%s", g.to_string().c_str());
  graph::save_graph(g, dir + "/residual_net.kgraph");
  check("Graph::run after save/load", graph::load_graph(dir + "/residual_net.kgraph").run(x), 1e-5f);

  auto fast = runtime_export::trace(model, slice(x, 0, 0, 2));  // BatchNorm folded; Add, ReLU fused
  std::printf("plan: %s\n", fast->describe_plan({x.shape()}).c_str());
  check("InferenceModel f32", fast->run(x), 1e-4f);
  runtime_export::save_inference_model(*fast, dir + "/residual_net_inference.kgraph");
  check("InferenceModel after save/load", runtime_export::load_inference_model(dir + "/residual_net_inference.kgraph")->run(x), 1e-4f);
  auto bf16 = runtime_export::trace(model, slice(x, 0, 0, 2), {.dtype = DType::bf16});
  check("InferenceModel bf16", bf16->run(x), 0.1f);

  runtime_export::export_onnx(model, {slice(x, 0, 0, 2)}, dir + "/residual_net.onnx");
  check("ONNX export, import, run", runtime_export::import_onnx(dir + "/residual_net.onnx").run(x), 1e-4f);
  return ok ? 0 : 1;
}
