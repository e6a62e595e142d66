#pragma once
// Ready-made architectures, as keras.applications: the models the examples, integration tests
// and benchmarks share.
#include <memory>

#include "nn/model.h"

namespace kiln::nn::applications {

// 784-128-64-10 MLP for 28x28x1 u8 images (rescaled inside the model).
std::unique_ptr<Sequential> fashion_mnist_mlp(int64_t classes = 10);
// The Keras image-classification CNN: Rescaling, Conv 16/32/64 (3x3, same, ReLU) each followed
// by MaxPooling2D, Flatten, Dense(128, relu), Dense(classes).
std::unique_ptr<Sequential> keras_cnn(int64_t classes = 10);
// ResNet-18 for small images (CIFAR style: 3x3 stem, no max pool), BasicBlocks [2, 2, 2, 2]
// with 64/128/256/512 filters, global average pooling and a Dense head.
std::unique_ptr<Model> resnet18(const Shape& input_shape = {32, 32, 3}, int64_t classes = 10);

}  // namespace kiln::nn::applications
