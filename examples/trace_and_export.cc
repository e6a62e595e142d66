// Train the Keras CNN on Fashion-MNIST, trace it into Kiln's InferenceModel (fp32 and bf16),
// evaluate and time all three side by side, then export it to ONNX for other runtimes.
//   bazel run //examples:trace_and_export -- [--epochs 1] [--out /tmp/fashion_mnist_cnn.onnx] [--smoke]
#include <chrono>
#include <cstdio>
#include <iostream>

#include "examples/example_data.h"
#include "examples/example_flags.h"
#include "kiln.h"
#include "nn/applications/applications.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_export.h"

namespace {

// Milliseconds of one predict() over the whole test set.
double predict_ms(kiln::nn::Model& model, const kiln::Tensor& x) {
  auto start = std::chrono::steady_clock::now();
  model.predict(x, 256);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kiln;
  cpu::apply_best_known_config(argc, argv);
  try {
    bool smoke = examples::switch_flag(argc, argv, "smoke");
    int64_t epochs = examples::int_flag(argc, argv, "epochs", 1);
    std::string out = examples::flag(argc, argv, "out", "/tmp/fashion_mnist_cnn.onnx");
    set_global_seed(1234);
    data::FashionMnist fm = examples::load_example_data(smoke);
    auto train = data::Dataset::from_tensor_slices(fm.x_train, fm.y_train).shuffle(60000, 42).batch(32).prefetch(2);
    auto test = data::Dataset::from_tensor_slices(fm.x_test, fm.y_test).batch(256);

    auto model = nn::applications::keras_cnn();
    model->compile(optim::Adam(1e-3), nn::SparseCategoricalCrossentropy(/*from_logits=*/true), {"accuracy"});
    model->fit(train, {.epochs = epochs});

    // BigDL-Nano's trace(model, accelerator, input_sample): the batch dimension stays free.
    Tensor sample = slice(fm.x_test, 0, 0, 2);
    auto fp32 = runtime_export::trace(*model, sample, {.accelerator = "kiln"});
    auto bf16 = runtime_export::trace(*model, sample, {.accelerator = "kiln", .dtype = DType::bf16});
    std::cout << "inference plan: " << fp32->describe_plan({fm.x_test.shape()}) << "\n";

    nn::Logs eager = model->evaluate(test), traced = fp32->evaluate(test), traced_bf16 = bf16->evaluate(test);
    std::printf("test accuracy  Model %.4f  InferenceModel fp32 %.4f  bf16 %.4f\n", eager["accuracy"],
                traced["accuracy"], traced_bf16["accuracy"]);
    model->predict(fm.x_test, 256);  // warm-up: primitives and plans are made on first use
    fp32->predict(fm.x_test, 256);
    bf16->predict(fm.x_test, 256);
    std::printf("predict on %lld images  Model %.0f ms  InferenceModel fp32 %.0f ms  bf16 %.0f ms\n",
                (long long)fm.x_test.shape()[0], predict_ms(*model, fm.x_test), predict_ms(*fp32, fm.x_test), predict_ms(*bf16, fm.x_test));

    runtime_export::export_onnx(*model, {sample}, out);
    std::printf("ONNX model written to %s (input '%s' is NHWC uint8 [batch, 28, 28, 1])\n", out.c_str(),
                fp32->inference_graph().values[fp32->inference_graph().inputs[0]].name.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trace_and_export: %s\n", e.what());
    return 1;
  }
  return 0;
}
