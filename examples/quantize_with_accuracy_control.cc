// Train the Keras CNN on Fashion-MNIST, quantize it to int8 with accuracy control (at most a
// 1% relative drop of test accuracy), print the trial table and both accuracies, time f32
// against int8, save the int8 model and export it as QDQ ONNX for ONNX Runtime.
//   bazel run //examples:quantize_with_accuracy_control -- [--epochs 1] [--out /tmp/cnn_int8] [--smoke]
#include <chrono>
#include <cstdio>
#include <iostream>

#include "examples/example_data.h"
#include "examples/example_flags.h"
#include "kiln.h"
#include "nn/applications/applications.h"
#include "quant/quantize.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/model_file.h"
#include "runtime_export/onnx/onnx_export.h"

namespace {

double predict_ms(const kiln::runtime_export::InferenceModel& model, const kiln::Tensor& x) {
  model.run(x);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) model.run(x);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / 5;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kiln;
  cpu::apply_best_known_config(argc, argv);
  try {
    bool smoke = examples::switch_flag(argc, argv, "smoke");
    int64_t epochs = examples::int_flag(argc, argv, "epochs", 1);
    std::string out = examples::flag(argc, argv, "out", "/tmp/fashion_mnist_cnn_int8");
    set_global_seed(1234);
    data::FashionMnist fm = examples::load_example_data(smoke);
    auto train = data::Dataset::from_tensor_slices(fm.x_train, fm.y_train).shuffle(60000, 42).batch(32).prefetch(2);
    auto test = data::Dataset::from_tensor_slices(fm.x_test, fm.y_test).batch(500);

    auto model = nn::applications::keras_cnn();
    model->compile(optim::Adam(1e-3), nn::SparseCategoricalCrossentropy(/*from_logits=*/true), {"accuracy"});
    model->fit(train, {.epochs = epochs});

    // 1000 training images (200 under --smoke) calibrate; the test set decides what is accurate enough.
    auto calib = data::Dataset::from_tensor_slices(fm.x_train).take(smoke ? 200 : 1000).batch(100);
    quant::QuantizationReport report;
    auto int8 = quant::quantize(*model, calib,
                                {.metric = "accuracy",
                                 .eval_data = test,
                                 .accuracy_criterion = {.relative = 0.01, .higher_is_better = true},
                                 .max_trials = 10},
                                &report);
    const quant::Trial& chosen = report.trials[report.chosen];
    std::printf("f32 accuracy %.4f, int8 accuracy %.4f (trial %d: %s)\n", report.baseline, chosen.metric,
                chosen.index, chosen.config.c_str());

    auto fp32 = runtime_export::trace(*model, slice(fm.x_test, 0, 0, 2));
    Tensor batch = slice(fm.x_test, 0, 0, 256);
    std::printf("batch of 256: InferenceModel f32 %.2f ms, int8 %.2f ms\n", predict_ms(*fp32, batch),
                predict_ms(*int8, batch));

    runtime_export::save_inference_model(*int8, out + ".kgraph");
    runtime_export::export_onnx(int8->inference_graph(), out + ".onnx");
    std::printf("int8 model saved to %s.kgraph; QDQ ONNX written to %s.onnx\n", out.c_str(), out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quantize_with_accuracy_control: %s\n", e.what());
    return 1;
  }
  return 0;
}
