#pragma once
// The small models the Fashion-MNIST examples, tests and benchmarks share (28x28x1 u8 images,
// rescaled inside the model).
#include <memory>

#include "nn/model.h"

namespace kiln::nn::applications {

// 784-128-64-10 MLP for 28x28x1 u8 images (rescaled inside the model).
std::unique_ptr<Sequential> fashion_mnist_mlp(int64_t classes = 10);
// The Keras image-classification CNN: Rescaling, Conv 16/32/64 (3x3, same, ReLU) each followed
// by MaxPooling2D, Flatten, Dense(128, relu), Dense(classes).
std::unique_ptr<Sequential> keras_cnn(int64_t classes = 10);

}  // namespace kiln::nn::applications
