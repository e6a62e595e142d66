// Tensors, ops and the tape: fit y = 3x - 2 from noisy samples with a GradientTape and SGD.
// Fails (exit 1) unless the weights land near 3 and -2.
#include <cmath>
#include <cstdio>
#include <vector>

#include "kiln.h"

int main() {
  using namespace kiln;
  Tensor x = random_uniform({256, 1}, -1, 1, /*seed=*/1);
  Tensor y = 3.f * x - 2.f + 0.01f * random_normal({256, 1}, 0, 1, /*seed=*/2);

  Variable w(random_normal({1, 1}, 0, 0.05f, /*seed=*/3), "w");
  Variable b(Tensor::zeros({1}), "b");
  optim::SGD sgd({.learning_rate = 0.5f});
  for (int step = 0; step < 100; ++step) {
    GradientTape tape;                               // records while it lives
    Tensor prediction = matmul(x, w) + b;            // trainable variables are watched automatically
    Tensor loss = reduce_mean(square(prediction - y));
    std::vector<Tensor> grads = tape.gradient(loss, std::vector<Variable>{w, b});
    sgd.apply_gradients(grads, {w, b});
    if (step % 25 == 0) std::printf("step %d: loss %.5f\n", step, loss.item());
  }
  float w_fit = w.value().item(), b_fit = b.value().item();
  std::printf("w = %.3f, b = %.3f\n", w_fit, b_fit);
  return std::abs(w_fit - 3) < 0.05f && std::abs(b_fit + 2) < 0.05f ? 0 : 1;
}
