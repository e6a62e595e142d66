#pragma once
// The data of the IPEX AMX sample without the download: CIFAR-10-shaped images (32x32x3 u8,
// labels 0-9) drawn from a fixed seed, resized to the training size and normalized as the
// sample's transforms do (Resize, ToTensor, Normalize(0.5, 0.5)).
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace kiln::bench {

struct ImageBatch {
  Tensor images;  // [batch, size, size, 3] f32 in [-1, 1]
  Tensor labels;  // [batch] s32
};

// `count` batches, each its own draw from (seed, batch index).
std::vector<ImageBatch> synthetic_cifar10(int64_t count, int64_t batch, int64_t size, uint64_t seed);

// Bilinear resize of NHWC u8 images with half-pixel centers (PIL's and tf.image's upsampling),
// scaled to [-1, 1].
Tensor resize_normalize(const Tensor& images_u8, int64_t size);

}  // namespace kiln::bench
