#include "benchmarks/inference_models.h"

#include <stdexcept>

#include "nn/applications/applications.h"
#include "graph/trace.h"
#include "quant/quantize.h"
#include "runtime_export/onnx/onnx_export.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"

namespace kiln::bench {

Tensor inference_input(const std::string& name, int64_t batch, uint64_t seed) {
  if (name == "resnet18") return random_uniform({batch, 32, 32, 3}, -1.f, 1.f, seed);
  if (name == "mobilenet_v3_small") return random_uniform({batch, 128, 128, 3}, 0.f, 255.f, seed);
  return cast(random_uniform({batch, 28, 28, 1}, 0.f, 255.f, seed), DType::u8);
}

std::shared_ptr<nn::Model> make_inference_model(const std::string& name, bool mixed_bf16) {
  set_global_seed(1);
  std::shared_ptr<nn::Model> model;
  if (name == "mlp") model = nn::applications::fashion_mnist_mlp();
  else if (name == "cnn") model = nn::applications::keras_cnn();
  else if (name == "resnet18") model = nn::applications::resnet18({32, 32, 3});
  else if (name == "mobilenet_v3_small")
    model = nn::applications::mobilenet_v3_small({.input_shape = {128, 128, 3}, .classes = 10});
  else throw std::invalid_argument("unknown model '" + name + "' (mlp, cnn, resnet18 or mobilenet_v3_small)");
  if (mixed_bf16) model->set_policy("mixed_bfloat16");
  (*model)(inference_input(name, 1, 0));
  uint64_t seed = 1000;
  for (const Variable& v : model->variables()) {
    const std::string& n = v.name();
    if (n.find("moving_variance") != std::string::npos) v.assign(random_uniform(v.value().shape(), 0.5f, 1.5f, ++seed));
    if (n.find("moving_mean") != std::string::npos) v.assign(random_uniform(v.value().shape(), -0.2f, 0.2f, ++seed));
  }
  return model;
}

Tensor calibration_images(const std::string& name) { return inference_input(name, 256, 99); }

int64_t trace_batch(const std::string& name) { return name == "mobilenet_v3_small" ? 64 : 2; }

std::unique_ptr<runtime_export::InferenceModel> quantize_inference_model(nn::Model& model, const std::string& name) {
  data::Dataset calib = data::Dataset::from_tensor_slices(calibration_images(name)).batch(64);
  return quant::quantize(model, calib);
}

void export_inference_model(nn::Model& model, const std::string& name, const std::string& path, bool int8) {
  if (int8) {
    runtime_export::export_onnx(quantize_inference_model(model, name)->inference_graph(), path);
  } else {
    runtime_export::export_onnx(graph::trace(model, inference_input(name, trace_batch(name), 1)), path);
  }
}

}  // namespace kiln::bench
