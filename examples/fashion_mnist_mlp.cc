// A 784-128-64-10 MLP on Fashion-MNIST with Sequential.fit.
//   bazel run //examples:fashion_mnist_mlp -- [--epochs 5] [--batch_size 32] [--policy mixed_bfloat16] [--smoke]
#include "examples/fashion_mnist_fit.h"
#include "nn/applications/applications.h"

int main(int argc, char** argv) {
  return kiln::examples::fit_fashion_mnist(argc, argv, "fashion_mnist_mlp",
                                           [] { return kiln::nn::applications::fashion_mnist_mlp(); });
}
