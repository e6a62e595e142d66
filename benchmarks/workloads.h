#pragma once
// Training-step workloads shared by the benchmarks: the MLP, the Keras CNN, ResNet-18,
// MobileNetV3Small, a small ViT, an LSTM classifier and a character-level transformer LM,
// each one Adam step on a fixed random batch (as the PyTorch twin in torch_train_bench.py).
#include <memory>
#include <string>
#include <vector>

#include "nn/model.h"
#include "nn/losses.h"
#include "optim/optimizers.h"

namespace kiln::bench {

struct TrainWorkload {
  std::string model_name;
  std::shared_ptr<nn::Model> model;  // shared: some applications (vision_transformer) return one
  std::unique_ptr<optim::Optimizer> optimizer;
  nn::SparseCategoricalCrossentropy loss{/*from_logits=*/true};
  Tensor x, y;
  // The model's inputs after x (the LM's positions); y holds one label per row of the model's
  // output (the LM's: one per position, its logits flattened to [rows, vocab] for the loss).
  std::vector<Tensor> more_inputs;
  std::vector<Tensor> inputs() const;

  // One forward, backward and optimizer step; returns the loss.
  float step();
  // Milliseconds spent in each phase by step(), accumulated.
  double forward_ms = 0, backward_ms = 0, optimizer_ms = 0;
};

// Flushes denormals to zero (MXCSR FTZ and DAZ) on this thread and on every OpenMP thread,
// as the PyTorch twin does with torch.set_flush_denormal(True). The benchmarks train on one
// fixed batch, so after a few hundred steps the loss is ~0 and Adam's moments fall into the
// denormal range, where each operation costs an Intel core ~100 cycles: the MLP's optimizer
// step went from 0.09 to 0.8 ms between steps 300 and 3000, which no real training shows.
void flush_denormals();

// model: "mlp" (28x28x1), "cnn" (28x28x1), "resnet18" (32x32x3), "mobilenet_v3_small"
// (128x128x3, Keras's MobileNetV3Small, 10 classes), "vit" (28x28x1 u8, the ViT of
// examples/vit_fashion_mnist.cc), "lstm" ([28, 28]: LSTM(128), Dense(10)), "lm" (examples/char_lm.cc's
// causal transformer at its defaults: [64] character ids of a 76-character vocabulary, the GPL-3
// text's, plus their positions; dim 128, 4 heads, 4 blocks; a label per position); dtype "f32" or "bf16" (mixed
// precision policy). Throws for unknown names.
// Per-step averages of a pass of training steps run with onednn::profiler on.
struct StepProfile {
  double wall_ms = 0;
  double primitive_ms = 0;  // oneDNN primitives (reorders included)
  double kernel_ms = 0;     // Kiln's own kernels, the optimizer's update included
  double primitive_calls = 0, kernel_calls = 0;
  std::string by_kind;      // "matmul 0.120 ms/9, ..." per step
  // The share of the step spent outside compute: 1 - (primitives + Kiln kernels) / wall.
  double overhead_pct() const { return wall_ms > 0 ? 100.0 * (1.0 - (primitive_ms + kernel_ms) / wall_ms) : 0; }
  // The narrower figure: 1 - primitives / wall (Kiln's own kernels count as overhead).
  double non_primitive_pct() const { return wall_ms > 0 ? 100.0 * (1.0 - primitive_ms / wall_ms) : 0; }
};
// Runs `steps` steps with the profiler on (it is off again afterwards).
StepProfile profile_steps(TrainWorkload& w, int steps);

TrainWorkload make_train_workload(const std::string& model, const std::string& dtype, int64_t batch);
Shape workload_input_shape(const std::string& model);

}  // namespace kiln::bench
