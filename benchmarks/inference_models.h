#pragma once
// The models the inference benchmark runs (the MLP, the Keras CNN, ResNet-18 on 32x32x3,
// Keras's MobileNetV3Small on 128x128x3 with 10 classes),
// built from a fixed seed so that every engine and ONNX Runtime run the same weights.
#include <memory>
#include <string>

#include "nn/model.h"
#include "runtime_export/inference_model.h"

namespace kiln::bench {

// name: "mlp", "cnn", "resnet18" or "mobilenet_v3_small"; mixed_bf16: the mixed_bfloat16 policy. BatchNorm
// statistics get seeded non-trivial values (as after training).
std::shared_ptr<nn::Model> make_inference_model(const std::string& name, bool mixed_bf16 = false);
// u8 images for the MLP and CNN, f32 in [-1, 1] for ResNet-18, f32 in [0, 255] for MobileNetV3.
Tensor inference_input(const std::string& name, int64_t batch, uint64_t seed);
// The 256 synthetic inputs (seeded) every int8 model here is calibrated on.
Tensor calibration_images(const std::string& name);
// The batch size of the sample each model is traced with (InferenceModel, ONNX export). It is
// 64 for MobileNetV3Small, whose ZeroPadding2D layers trace with the sample's batch size fixed,
// so it is benchmarked at that batch only (and calibrated in batches of 64, as the others); 2
// (any batch runs) for the rest.
int64_t trace_batch(const std::string& name);
// The int8 model quant::quantize() makes, calibrated on calibration_images(name).
std::unique_ptr<runtime_export::InferenceModel> quantize_inference_model(nn::Model& model, const std::string& name);
// Writes the model as ONNX (runtime_export/onnx) for ONNX Runtime: f32, or with int8 the
// quantized model as QDQ ONNX.
void export_inference_model(nn::Model& model, const std::string& name, const std::string& path, bool int8 = false);

}  // namespace kiln::bench
