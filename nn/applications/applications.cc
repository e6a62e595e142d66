#include "nn/applications/applications.h"

#include <string>

#include "nn/layers/layers.h"

namespace kiln::nn::applications {

std::unique_ptr<Sequential> fashion_mnist_mlp(int64_t classes) {
  return std::make_unique<Sequential>(
      std::vector<Layer>{Rescaling(1.f / 255), Flatten(), Dense(128, "relu"), Dense(64, "relu"), Dense(classes)}, "mlp");
}

std::unique_ptr<Sequential> keras_cnn(int64_t classes) {
  Conv2DOptions same;
  same.padding = "same";
  return std::make_unique<Sequential>(
      std::vector<Layer>{Rescaling(1.f / 255), Conv2D(16, 3, "relu", same), MaxPooling2D(), Conv2D(32, 3, "relu", same),
                         MaxPooling2D(), Conv2D(64, 3, "relu", same), MaxPooling2D(), Flatten(), Dense(128, "relu"),
                         Dense(classes)},
      "keras_cnn");
}

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

}  // namespace

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
