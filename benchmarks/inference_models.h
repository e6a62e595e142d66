#pragma once
// The models the inference benchmark runs (the MLP, the Keras CNN, ResNet-18 on 32x32x3, and
// the mobilenet_v3_fashion_mnist example's MobileNetV3Small on 28x28x1 u8 images),
// built from a fixed seed so that every engine and the peers (through the exported file) run
// the same weights; trained on Fashion-MNIST when accuracy is measured.
#include <memory>
#include <string>

#include "nn/model.h"
#include "runtime_export/inference_model.h"

namespace kiln::bench {

// name: "mlp", "cnn", "resnet18", "mobilenet_v3_small", "vit" (issue 22's ViT) or "lstm" (issue 22's
// LSTM(128) + Dense(10) over 28 rows of 28 pixels, the training benchmark's); mixed_bf16: the mixed_bfloat16 policy. BatchNorm
// statistics get seeded non-trivial values (as after training); trained weights, when given
// (save_weights of train_on_fashion_mnist), replace every variable.
std::shared_ptr<nn::Model> make_inference_model(const std::string& name, bool mixed_bf16 = false,
                                                const std::string& weights = "");
// u8 images for the MLP, the CNN, MobileNetV3Small and the ViT, f32 for ResNet-18 and the LSTM
// ([batch, 28, 28] in [0, 1]).
Tensor inference_input(const std::string& name, int64_t batch, uint64_t seed);
// Fashion-MNIST images (u8 [N, 28, 28, 1]) as the model's input: unchanged for the MLP, the CNN
// and MobileNetV3Small (they rescale themselves); for the LSTM scaled to [0, 1] as [N, 28, 28]; for ResNet-18 scaled to [0, 1], zero-padded to 32x32 and repeated
// over 3 channels (f32 [N, 32, 32, 3]). The peers get these same tensors (.npy).
Tensor fashion_mnist_input(const std::string& name, const Tensor& images);
// Trains the model (Adam 1e-3, batch 32, shuffled; MobileNetV3Small with the rate decaying to 0
// over the run as the example does) on the first `images` Fashion-MNIST training
// images for `epochs` epochs and writes its weights to `path`.
void train_on_fashion_mnist(nn::Model& model, const std::string& name, int64_t images, int64_t epochs,
                            const std::string& path);
// The batch a model is traced with. MobileNetV3Small's ZeroPadding2D layers trace as concats
// with zero constants of the traced batch, so its InferenceModels and ONNX files run only at the
// batch they were traced with: trace_batch > 0 picks it (the batch the caller runs). Other
// models run at any batch and ignore it.
int64_t traced_batch(const std::string& name, int64_t trace_batch);
// The int8 model quant::quantize() makes (minmax): calibrated on `calibration` (the model's
// input, any batch), or without it on 256 synthetic inputs (seeded), in batches of 64 or of
// trace_batch (see traced_batch; images past the last whole batch are then left out).
std::unique_ptr<runtime_export::InferenceModel> quantize_inference_model(nn::Model& model, const std::string& name,
                                                                         const Tensor& calibration = Tensor(),
                                                                         int64_t trace_batch = 0);
// Writes the model as ONNX (runtime_export/onnx) for the peers: f32, or with int8 the
// quantized model as QDQ ONNX.
void export_inference_model(nn::Model& model, const std::string& name, const std::string& path, bool int8 = false,
                            const Tensor& calibration = Tensor(), int64_t trace_batch = 0);

}  // namespace kiln::bench
