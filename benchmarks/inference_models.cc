#include "benchmarks/inference_models.h"

#include <stdexcept>
#include <vector>

#include "data/fashion_mnist.h"
#include "graph/trace.h"
#include "nn/applications/applications.h"
#include "nn/layers/layers.h"
#include "nn/losses.h"
#include "optim/optimizers.h"
#include "quant/quantize.h"
#include "runtime_export/onnx/onnx_export.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"

namespace kiln::bench {

Tensor inference_input(const std::string& name, int64_t batch, uint64_t seed) {
  if (name == "resnet18") return random_uniform({batch, 32, 32, 3}, -1.f, 1.f, seed);
  if (name == "lstm") return random_uniform({batch, 28, 28}, 0.f, 1.f, seed);
  return cast(random_uniform({batch, 28, 28, 1}, 0.f, 255.f, seed), DType::u8);
}

Tensor fashion_mnist_input(const std::string& name, const Tensor& images) {
  if (images.dtype() != DType::u8 || images.shape().size() != 4 || images.shape()[1] != 28 ||
      images.shape()[2] != 28 || images.shape()[3] != 1) {
    throw std::invalid_argument("fashion_mnist_input: expected u8 images [N, 28, 28, 1], got " + images.describe());
  }
  const int64_t n = images.shape()[0];
  if (name == "lstm") return reshape(cast(images, DType::f32), {n, 28, 28}) * (1.f / 255.f);
  if (name != "resnet18") return images;
  Tensor src = contiguous(images);
  const uint8_t* in = src.data<uint8_t>();
  std::vector<float> out(static_cast<size_t>(n) * 32 * 32 * 3, 0.f);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t y = 0; y < 28; ++y) {
      for (int64_t x = 0; x < 28; ++x) {
        const float v = in[(i * 28 + y) * 28 + x] / 255.f;
        float* px = &out[((i * 32 + y + 2) * 32 + x + 2) * 3];
        px[0] = px[1] = px[2] = v;
      }
    }
  }
  return Tensor::from_vector(out, {n, 32, 32, 3});
}

// Issue 22: the ViT of examples/vit_fashion_mnist (4x4 patches, dim 64, 4 blocks of 4 heads,
// MLP 128; u8 images like the MLP and CNN).
std::shared_ptr<nn::Model> make_vit() { return nn::applications::vision_transformer(); }

// Issue 22: the training benchmark's LSTM classifier (benchmarks/workloads.cc): image rows as
// 28 steps of 28 features in [0, 1], LSTM(128), Dense(10).
std::shared_ptr<nn::Model> make_lstm() {
  return std::make_shared<nn::Sequential>(std::vector<nn::Layer>{nn::LSTM(128), nn::Dense(10)}, "lstm");
}

std::shared_ptr<nn::Model> make_inference_model(const std::string& name, bool mixed_bf16, const std::string& weights) {
  set_global_seed(1);
  std::shared_ptr<nn::Model> model;
  if (name == "vit") model = make_vit();
  else if (name == "mlp") model = nn::applications::fashion_mnist_mlp();
  else if (name == "cnn") model = nn::applications::keras_cnn();
  else if (name == "resnet18") model = nn::applications::resnet18({32, 32, 3});
  else if (name == "mobilenet_v3_small") model = nn::applications::fashion_mnist_mobilenet_v3_small();
  else if (name == "lstm") model = make_lstm();
  else throw std::invalid_argument("unknown model '" + name + "' (mlp, cnn, resnet18, mobilenet_v3_small, vit or lstm)");
  if (mixed_bf16) model->set_policy("mixed_bfloat16");
  (*model)(inference_input(name, 1, 0));
  uint64_t seed = 1000;
  for (const Variable& v : model->variables()) {
    const std::string& n = v.name();
    if (n.find("moving_variance") != std::string::npos) v.assign(random_uniform(v.value().shape(), 0.5f, 1.5f, ++seed));
    if (n.find("moving_mean") != std::string::npos) v.assign(random_uniform(v.value().shape(), -0.2f, 0.2f, ++seed));
  }
  if (!weights.empty()) model->load_weights(weights);
  return model;
}

void train_on_fashion_mnist(nn::Model& model, const std::string& name, int64_t images, int64_t epochs,
                            const std::string& path) {
  data::FashionMnist fm = data::load_fashion_mnist();
  const int64_t n = std::min<int64_t>(images, fm.x_train.shape()[0]);
  if (n < 1 || epochs < 1) {
    throw std::invalid_argument("train_on_fashion_mnist: need at least one image and one epoch, got " +
                                std::to_string(images) + " images, " + std::to_string(epochs) + " epochs");
  }
  Tensor x = fashion_mnist_input(name, slice(fm.x_train, 0, 0, n));
  Tensor y = slice(fm.y_train, 0, 0, n);
  constexpr int64_t kBatch = 32;
  auto train = data::Dataset::from_tensor_slices(x, y).shuffle(n, 42).batch(kBatch);
  optim::AdamOptions adam{.learning_rate = 1e-3f};
  if (name == "mobilenet_v3_small") {
    // The example's recipe: its BatchNormalization moving statistics (Keras's momentum 0.999)
    // trail weights that still move fast at a constant rate (test accuracy near chance after
    // one epoch), so the rate decays to zero over the run (Keras CosineDecay).
    const int64_t steps = epochs * ((n + kBatch - 1) / kBatch);
    adam = optim::AdamOptions{.schedule = std::make_shared<optim::CosineDecay>(1e-3f, steps)};
  }
  model.compile(optim::Adam(adam), nn::SparseCategoricalCrossentropy(/*from_logits=*/true), {"accuracy"});
  model.fit(train, {.epochs = epochs, .verbose = 2});
  model.save_weights(path);
}

int64_t traced_batch(const std::string& name, int64_t trace_batch) {
  return name == "mobilenet_v3_small" && trace_batch > 0 ? trace_batch : 0;
}

std::unique_ptr<runtime_export::InferenceModel> quantize_inference_model(nn::Model& model, const std::string& name,
                                                                         const Tensor& calibration, int64_t trace_batch) {
  Tensor images = calibration.defined() ? calibration : inference_input(name, 256, 99);
  const int64_t fixed = traced_batch(name, trace_batch);
  if (fixed > images.shape()[0]) {
    throw std::invalid_argument("quantize_inference_model: " + std::to_string(images.shape()[0]) +
                                " calibration images do not fill one batch of " + std::to_string(fixed));
  }
  data::Dataset calib = data::Dataset::from_tensor_slices(images).batch(fixed ? fixed : 64, /*drop_remainder=*/fixed > 0);
  quant::QuantizeOptions options;
  options.verbose = false;
  return quant::quantize(model, calib, options);
}

void export_inference_model(nn::Model& model, const std::string& name, const std::string& path, bool int8,
                            const Tensor& calibration, int64_t trace_batch) {
  if (int8) {
    runtime_export::export_onnx(quantize_inference_model(model, name, calibration, trace_batch)->inference_graph(),
                                path);
  } else {
    const int64_t fixed = traced_batch(name, trace_batch);
    runtime_export::export_onnx(graph::trace(model, inference_input(name, fixed ? fixed : 2, 1)), path);
  }
}

}  // namespace kiln::bench
