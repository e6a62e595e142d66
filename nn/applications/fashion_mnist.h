#pragma once
// The small models the Fashion-MNIST examples, tests and benchmarks share (28x28x1 u8 images,
// rescaled inside the model).
#include <memory>

#include "nn/model.h"
#include "nn/applications/mobilenet_v3.h"

namespace kiln::nn::applications {

// 784-128-64-10 MLP for 28x28x1 u8 images (rescaled inside the model).
std::unique_ptr<Sequential> fashion_mnist_mlp(int64_t classes = 10);
// The Keras image-classification CNN: Rescaling, Conv 16/32/64 (3x3, same, ReLU) each followed
// by MaxPooling2D, Flatten, Dense(128, relu), Dense(classes).
std::unique_ptr<Sequential> keras_cnn(int64_t classes = 10);

struct FashionMnistMobileNetOptions {
  // The side the 28x28 images are brought to before the network. 32 zero-pads them (MobileNetV3's
  // smallest input, but five stride-2 stages leave 1x1); a multiple of 28 repeats pixels
  // (UpSampling2D, nearest); any other size >= 32 resizes bilinearly (Resizing).
  int64_t image_size = 56;
  double alpha = 1.0;
  bool minimalistic = true;
  int64_t classes = 10;
};
// Keras's MobileNetV3Small (logits, no classifier activation) for 28x28x1 u8 images: the model
// rescales the pixels to [-1, 1] (Keras's include_preprocessing, done before the resize), then
// brings them to image_size x image_size itself. The mobilenet_v3_fashion_mnist example and
// the inference benchmark share it.
std::unique_ptr<Model> fashion_mnist_mobilenet_v3_small(const FashionMnistMobileNetOptions& options = {});

}  // namespace kiln::nn::applications
