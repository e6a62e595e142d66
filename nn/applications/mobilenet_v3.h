#pragma once
// keras.applications.MobileNetV3Small / MobileNetV3Large (weights=None): Keras's architecture,
// arguments, defaults and layer names, so parameter counts equal Keras's for the same arguments
// (tests/applications_test.cc checks them against tests/keras_param_counts.inc).
#include <memory>
#include <optional>
#include <string>

#include "nn/model.h"
#include "nn/symbolic.h"

namespace kiln::nn::applications {

struct MobileNetV3Options {
  // [H, W, C]: at least 32x32 (Keras's limit); any channel count. Ignored when input_tensor is
  // given (its shape is used).
  Shape input_shape = {224, 224, 3};
  // Width multiplier: every block's filters become round_channels(filters * alpha); above 1.0
  // the head's 1x1 conv widens too.
  double alpha = 1.0;
  // No squeeze-excite, ReLU instead of hard-swish, 3x3 instead of 5x5 depthwise kernels.
  bool minimalistic = false;
  // The head: global average pooling, 1x1 conv (1024 / 1280 filters) + activation, Dropout,
  // 1x1 conv to `classes`, Flatten, classifier_activation. Without it, `pooling` applies.
  bool include_top = true;
  // Use this tensor as the image input (Keras's input_tensor): the model's inputs are the Inputs
  // it was computed from, so layers before it (resizing, padding) become part of the model.
  std::optional<SymbolicTensor> input_tensor;
  int64_t classes = 1000;
  // include_top=false only: "" (4-D feature map), "avg" or "max" (global pooling to [N, C]).
  std::string pooling;
  float dropout_rate = 0.2f;
  // "softmax" as Keras; "" or "linear" returns logits.
  std::string classifier_activation = "softmax";
  // Rescaling(1/127.5, offset=-1) first, so the model takes [0, 255] pixels (u8 or f32);
  // without it the model expects [-1, 1].
  bool include_preprocessing = true;
  std::string name;  // "" = "MobileNetV3Small" / "MobileNetV3Large"
};

std::unique_ptr<Model> mobilenet_v3_small(const MobileNetV3Options& options = {});
std::unique_ptr<Model> mobilenet_v3_large(const MobileNetV3Options& options = {});

}  // namespace kiln::nn::applications
