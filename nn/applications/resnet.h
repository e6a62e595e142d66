#pragma once
// ResNets: a CIFAR-style ResNet-18 and keras.applications.ResNet50.
#include <memory>

#include "nn/model.h"

namespace kiln::nn::applications {

// ResNet-18 for small images (CIFAR style: 3x3 stem, no max pool), BasicBlocks [2, 2, 2, 2]
// with 64/128/256/512 filters, global average pooling and a Dense head.
std::unique_ptr<Model> resnet18(const Shape& input_shape = {32, 32, 3}, int64_t classes = 10);
// keras.applications.ResNet50 (v1, weights=None) with Keras's layer names: ZeroPadding2D(3) +
// 7x7/2 conv + BN + ReLU, ZeroPadding2D(1) + 3x3/2 max pool, bottleneck stacks [3, 4, 6, 3]
// (1x1 with the stride, 3x3, 1x1 x4; conv biases; BN epsilon 1.001e-5; a 1x1 projection on
// each stage's first block), global average pooling, Dense(classes). The head returns logits
// (classifier_activation=None); the parameter count is Keras's either way: 23,608,202 for 10
// classes (25,636,712 for 1000), of which 53,120 are BN moving statistics. Any input of at least
// 32x32 works; the 224x224 default is Keras's.
std::unique_ptr<Model> resnet50(const Shape& input_shape = {224, 224, 3}, int64_t classes = 1000);

}  // namespace kiln::nn::applications
