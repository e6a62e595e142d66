#pragma once
// The models the inference benchmark runs (the MLP, the Keras CNN, ResNet-18 on 32x32x3),
// built from a fixed seed so that every engine and ONNX Runtime run the same weights.
#include <memory>
#include <string>

#include "nn/model.h"
#include "runtime_export/inference_model.h"

namespace kiln::bench {

// name: "mlp", "cnn" or "resnet18"; mixed_bf16: the mixed_bfloat16 policy. BatchNorm
// statistics get seeded non-trivial values (as after training).
std::shared_ptr<nn::Model> make_inference_model(const std::string& name, bool mixed_bf16 = false);
// u8 images for the MLP and CNN, f32 for ResNet-18.
Tensor inference_input(const std::string& name, int64_t batch, uint64_t seed);
// The int8 model quant::quantize() makes, calibrated on 256 synthetic inputs (seeded).
std::unique_ptr<runtime_export::InferenceModel> quantize_inference_model(nn::Model& model, const std::string& name);
// Writes the model as ONNX (runtime_export/onnx) for ONNX Runtime: f32, or with int8 the
// quantized model as QDQ ONNX.
void export_inference_model(nn::Model& model, const std::string& name, const std::string& path, bool int8 = false);

}  // namespace kiln::bench
