#pragma once
// keras.applications.MobileNetV2 (weights=None): Keras's architecture, arguments, defaults and
// layer names; parameter counts equal Keras's (tests/keras_param_counts.inc). Keras expects
// inputs scaled to [-1, 1] (mobilenet_v2.preprocess_input); the model has no Rescaling.
#include <memory>
#include <optional>
#include <string>

#include "nn/model.h"
#include "nn/symbolic.h"

namespace kiln::nn::applications {

struct MobileNetV2Options {
  Shape input_shape = {224, 224, 3};  // [H, W, C], at least 32x32; ignored with input_tensor
  // Width multiplier for every block (the last 1x1 conv's 1280 filters widen only above 1.0).
  double alpha = 1.0;
  bool include_top = true;  // global average pooling + Dense(classes, classifier_activation)
  std::optional<SymbolicTensor> input_tensor;  // as MobileNetV3Options::input_tensor
  std::string pooling;                         // include_top=false: "", "avg" or "max"
  int64_t classes = 1000;
  std::string classifier_activation = "softmax";  // "" or "linear" returns logits
  std::string name;  // "" = Keras's "mobilenetv2_<alpha>_<rows>"
};

std::unique_ptr<Model> mobilenet_v2(const MobileNetV2Options& options = {});

}  // namespace kiln::nn::applications
