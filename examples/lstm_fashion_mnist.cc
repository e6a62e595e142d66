// An LSTM (or GRU: --cell gru) classifier reading each Fashion-MNIST image as a 28-step
// sequence of 28-pixel rows: Rescaling, Reshape to [28, 28], LSTM(128), Dense(10), with
// Sequential.fit (issue 22's bar: >= 87% test accuracy).
//   bazel run -c opt //examples:lstm_fashion_mnist -- [--cell lstm|gru] [--units 128] [--epochs 5]
//     [--batch_size 32] [--policy mixed_bfloat16] [--smoke]
#include <stdexcept>

#include "examples/fashion_mnist_fit.h"

int main(int argc, char** argv) {
  using namespace kiln::nn;
  const std::string cell = kiln::examples::flag(argc, argv, "cell", "lstm");
  const int64_t units = kiln::examples::int_flag(argc, argv, "units", 128);
  return kiln::examples::fit_fashion_mnist(argc, argv, "lstm_fashion_mnist", [&] {
    if (cell != "lstm" && cell != "gru") throw std::invalid_argument("--cell must be lstm or gru, got '" + cell + "'");
    Layer recurrent = cell == "lstm" ? LSTM(units) : GRU(units);
    return std::make_unique<Sequential>(
        std::vector<Layer>{Rescaling(1.f / 255.f), Reshape({28, 28}), recurrent, Dense(10)});
  });
}
