#include "nn/applications/resnet.h"

#include <string>

#include "nn/layers/layers.h"

namespace kiln::nn::applications {
namespace {

SymbolicTensor conv_bn(const SymbolicTensor& x, int64_t filters, int64_t kernel, int64_t stride, bool relu) {
  Conv2DOptions opt;
  opt.padding = "same";
  opt.strides = {stride, stride};
  opt.use_bias = false;  // the batch norm's beta is the bias
  opt.kernel_initializer = "he_normal";
  SymbolicTensor y = BatchNormalization()(Conv2D(filters, kernel, "", opt)(x));
  return relu ? Activation("relu")(y) : y;
}

SymbolicTensor basic_block(const SymbolicTensor& x, int64_t filters, int64_t stride) {
  SymbolicTensor y = conv_bn(x, filters, 3, stride, true);
  y = conv_bn(y, filters, 3, 1, false);
  SymbolicTensor shortcut = x;
  if (stride != 1 || x.shape().back() != filters) shortcut = conv_bn(x, filters, 1, stride, false);
  return Activation("relu")(Add()({y, shortcut}));
}

// Keras's resnet.py: epsilon 1.001e-5 in every BN, glorot_uniform kernels with biases.
SymbolicTensor keras_conv_bn(const SymbolicTensor& x, int64_t filters, int64_t kernel, int64_t stride,
                             const std::string& padding, const std::string& name) {
  Conv2DOptions opt;
  opt.strides = {stride, stride};
  opt.padding = padding;
  BatchNormalizationOptions bn;
  bn.epsilon = 1.001e-5f;
  return BatchNormalization(bn, name + "_bn")(Conv2D(filters, kernel, "", opt, name + "_conv")(x));
}

// Keras's block1: the stride sits on the first 1x1 conv (v1), not on the 3x3 as in v1.5.
SymbolicTensor bottleneck(const SymbolicTensor& x, int64_t filters, int64_t stride, bool projection,
                          const std::string& name) {
  SymbolicTensor shortcut = projection ? keras_conv_bn(x, 4 * filters, 1, stride, "valid", name + "_0") : x;
  SymbolicTensor y = Activation("relu", name + "_1_relu")(keras_conv_bn(x, filters, 1, stride, "valid", name + "_1"));
  y = Activation("relu", name + "_2_relu")(keras_conv_bn(y, filters, 3, 1, "same", name + "_2"));
  y = keras_conv_bn(y, 4 * filters, 1, 1, "valid", name + "_3");
  return Activation("relu", name + "_out")(Add(name + "_add")({shortcut, y}));
}

}  // namespace

std::unique_ptr<Model> resnet50(const Shape& input_shape, int64_t classes) {
  SymbolicTensor inputs = Input(input_shape);
  SymbolicTensor x = ZeroPadding2D(3, "conv1_pad")(inputs);
  x = Activation("relu", "conv1_relu")(keras_conv_bn(x, 64, 7, 2, "valid", "conv1"));
  // Zeros around a ReLU output pool like -inf would, so this is exact max pooling.
  x = MaxPooling2D({3, 3}, {2, 2}, "valid", "pool1_pool")(ZeroPadding2D(1, "pool1_pad")(x));
  const int64_t filters[4] = {64, 128, 256, 512};
  const int blocks[4] = {3, 4, 6, 3};
  for (int stage = 0; stage < 4; ++stage) {
    for (int b = 0; b < blocks[stage]; ++b) {
      int64_t stride = (b == 0 && stage > 0) ? 2 : 1;
      std::string name = "conv" + std::to_string(stage + 2) + "_block" + std::to_string(b + 1);
      x = bottleneck(x, filters[stage], stride, /*projection=*/b == 0, name);
    }
  }
  x = GlobalAveragePooling2D(false, "avg_pool")(x);
  SymbolicTensor outputs = Dense(classes, "", {}, "predictions")(x);
  return std::make_unique<Model>(inputs, outputs, "resnet50");
}

std::unique_ptr<Model> resnet18(const Shape& input_shape, int64_t classes) {
  SymbolicTensor inputs = Input(input_shape);
  SymbolicTensor x = conv_bn(inputs, 64, 3, 1, true);
  const int64_t filters[4] = {64, 128, 256, 512};
  for (int stage = 0; stage < 4; ++stage) {
    x = basic_block(x, filters[stage], stage == 0 ? 1 : 2);
    x = basic_block(x, filters[stage], 1);
  }
  x = GlobalAveragePooling2D()(x);
  SymbolicTensor outputs = Dense(classes)(x);
  return std::make_unique<Model>(inputs, outputs, "resnet18");
}

}  // namespace kiln::nn::applications
