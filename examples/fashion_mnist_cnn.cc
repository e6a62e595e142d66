// The Keras image-classification CNN on Fashion-MNIST: Rescaling, three Conv2D+MaxPooling2D
// blocks (16/32/64 filters), Dense(128), Dense(10); Adam and sparse categorical cross-entropy.
//   bazel run //examples:fashion_mnist_cnn -- [--epochs 5] [--batch_size 32] [--policy mixed_bfloat16] [--smoke]
#include "examples/fashion_mnist_fit.h"
#include "nn/applications/applications.h"

int main(int argc, char** argv) {
  return kiln::examples::fit_fashion_mnist(argc, argv, "fashion_mnist_cnn",
                                           [] { return kiln::nn::applications::keras_cnn(); });
}
