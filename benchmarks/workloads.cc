#include "benchmarks/workloads.h"

#include <algorithm>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "autograd/gradient_tape.h"
#include "nn/applications/applications.h"
#include "nn/applications/vision_transformer.h"
#include "nn/layers/layers.h"
#include "nn/policy.h"
#include "tensor/onednn/profiler.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/random.h"

namespace kiln::bench {
namespace {
// examples/char_lm.cc's defaults; 76 is the number of distinct characters of its corpus.
constexpr int64_t kLmContext = 64, kLmVocab = 76;
}  // namespace

Shape workload_input_shape(const std::string& model) {
  if (model == "mlp" || model == "cnn" || model == "vit") return {28, 28, 1};
  // Fashion-MNIST's 28 rows as a 28-step sequence of 28 features.
  if (model == "lstm") return {28, 28};
  if (model == "lm") return {kLmContext};
  if (model == "resnet18") return {32, 32, 3};
  // As MOBILENET_INPUT in the PyTorch twin (benchmarks/torch_mobilenet_v3.py).
  if (model == "mobilenet_v3_small") return {128, 128, 3};
  throw std::invalid_argument("unknown benchmark model '" + model +
                              "' (expected mlp, cnn, resnet18, mobilenet_v3_small, vit, lstm or lm)");
}

void flush_denormals() {
#if defined(__x86_64__)
  auto set = [] { _mm_setcsr(_mm_getcsr() | 0x8040u); };  // FTZ (bit 15) | DAZ (bit 6)
  set();
#pragma omp parallel
  set();
#endif
}

TrainWorkload make_train_workload(const std::string& model, const std::string& dtype, int64_t batch) {
  if (dtype != "f32" && dtype != "bf16") throw std::invalid_argument("dtype must be f32 or bf16, got '" + dtype + "'");
  nn::set_global_policy(dtype == "bf16" ? "mixed_bfloat16" : "float32");
  set_global_seed(1);
  TrainWorkload w;
  w.model_name = model;
  Shape in = workload_input_shape(model);
  if (model == "mlp") w.model = nn::applications::fashion_mnist_mlp();
  if (model == "cnn") w.model = nn::applications::keras_cnn();
  if (model == "resnet18") w.model = nn::applications::resnet18(in);
  if (model == "mobilenet_v3_small") {
    // Keras's MobileNetV3Small with 10 classes, returning logits; pixels in [0, 255] are
    // rescaled inside (as in the twin).
    w.model = nn::applications::mobilenet_v3_small(
        {.input_shape = in, .classes = 10, .classifier_activation = ""});
  }
  if (model == "vit") {
    // examples/vit_fashion_mnist.cc's ViT (the default options): u8 pixels rescaled inside,
    // 4x4 patches -> 49 tokens of 64, 4 pre-norm blocks of 4 heads, gelu MLP 128, 10 logits.
    w.model = nn::applications::vision_transformer();
  }
  if (model == "lstm") {
    w.model = std::make_unique<nn::Sequential>(std::vector<nn::Layer>{nn::LSTM(128), nn::Dense(10)}, "lstm");
  }
  if (model == "lm") {
    w.model = nn::applications::char_transformer_lm({.vocab = kLmVocab, .context = kLmContext});
    nn::set_global_policy("float32");
    // Random characters and next-character labels: the step's cost does not depend on them.
    w.x = cast(random_uniform({batch, kLmContext}, 0.f, kLmVocab - 0.01f, 2), DType::s32);
    w.y = cast(random_uniform({batch, kLmContext}, 0.f, kLmVocab - 0.01f, 3), DType::s32);
    w.more_inputs = {nn::applications::lm_positions(batch, kLmContext)};
    w.optimizer = std::make_unique<optim::Adam>(1e-3f);
    return w;
  }
  nn::set_global_policy("float32");
  Shape xs{batch};
  xs.insert(xs.end(), in.begin(), in.end());
  float high = model == "resnet18" || model == "lstm" ? 1.f : 255.f;
  w.x = random_uniform(xs, 0.f, high, 2);
  // The ViT's input is u8 pixels (its Input's dtype), as the example feeds it.
  if (model == "vit") w.x = cast(w.x, DType::u8);
  std::vector<int32_t> labels(batch);
  for (int64_t i = 0; i < batch; ++i) labels[i] = static_cast<int32_t>(i % 10);
  w.y = Tensor::from_int32(labels, {batch});
  w.model->build(in);
  w.optimizer = std::make_unique<optim::Adam>(1e-3f);
  return w;
}

std::vector<Tensor> TrainWorkload::inputs() const {
  std::vector<Tensor> all{x};
  all.insert(all.end(), more_inputs.begin(), more_inputs.end());
  return all;
}

float TrainWorkload::step() {
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  auto vars = model->trainable_variables();
  Tensor l;
  std::vector<Tensor> grads;
  auto t0 = clock::now(), t1 = t0, t2 = t0;
  {
    GradientTape tape;
    Tensor out = model->call(inputs(), /*training=*/true)[0];
    if (y.shape().size() > 1) {
      l = loss(reshape(y, {-1}), reshape(out, {y.numel(), out.shape().back()}));
    } else {
      l = loss(y, out);
    }
    t1 = clock::now();
    grads = tape.gradient(l, vars);
    t2 = clock::now();
  }
  {
    // The update is one vectorized pass per variable: compute, not overhead, for the profiler
    // (a primitive or kernel inside it is counted once, by this region).
    onednn::profiler::KernelScope update;
    optimizer->apply_gradients(grads, vars);
  }
  auto t3 = clock::now();
  forward_ms += ms(t0, t1);
  backward_ms += ms(t1, t2);
  optimizer_ms += ms(t2, t3);
  return l.item();
}

StepProfile profile_steps(TrainWorkload& w, int steps) {
  namespace prof = onednn::profiler;
  prof::reset();
  prof::set_enabled(true);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) w.step();
  double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  prof::set_enabled(false);
  prof::Totals t = prof::totals();
  StepProfile p;
  double n = std::max(steps, 1);
  p.wall_ms = wall / n;
  p.primitive_ms = t.primitive_ms / n;
  p.kernel_ms = t.kernel_ms / n;
  p.primitive_calls = t.primitive_calls / n;
  p.kernel_calls = t.kernel_calls / n;
  for (const auto& k : t.by_kind) {
    char cell[96];
    std::snprintf(cell, sizeof cell, "%s%s %.3f ms/%.0f", p.by_kind.empty() ? "" : ", ", k.kind.c_str(), k.ms / n,
                  k.calls / n);
    p.by_kind += cell;
  }
  return p;
}

}  // namespace kiln::bench
