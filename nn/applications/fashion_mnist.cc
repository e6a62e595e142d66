#include "nn/applications/fashion_mnist.h"

#include <stdexcept>
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

std::unique_ptr<Model> fashion_mnist_mobilenet_v3_small(const FashionMnistMobileNetOptions& o) {
  constexpr int64_t kSide = 28;
  if (o.image_size < 32) {
    throw std::invalid_argument("fashion_mnist_mobilenet_v3_small: image_size " + std::to_string(o.image_size) +
                                " is below 32, MobileNetV3's smallest input");
  }
  SymbolicTensor images = Input({kSide, kSide, 1}, DType::u8);
  SymbolicTensor x = Rescaling(1.f / 127.5f, -1.f, "rescaling")(images);
  if (o.image_size == 32) {
    x = ZeroPadding2D(2, "pad_to_32")(x);
  } else if (o.image_size % kSide == 0) {
    const int64_t factor = o.image_size / kSide;
    x = UpSampling2D({factor, factor}, "nearest", "upsample_to_" + std::to_string(o.image_size))(x);
  } else {
    x = Resizing(o.image_size, o.image_size, {}, "resize_to_" + std::to_string(o.image_size))(x);
  }
  return mobilenet_v3_small({.alpha = o.alpha,
                             .minimalistic = o.minimalistic,
                             .input_tensor = x,
                             .classes = o.classes,
                             .classifier_activation = "",
                             .include_preprocessing = false});
}

}  // namespace kiln::nn::applications
