#include "nn/applications/fashion_mnist.h"

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

}  // namespace kiln::nn::applications
