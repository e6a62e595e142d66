// Times inference of one model with one Kiln engine, for inference_compare.py:
//   kiln_infer_bench --model cnn --engine inference --dtype f32 --batch 1 --seconds 3
//     model: mlp, cnn, resnet18, mobilenet_v3_small, vit, lstm (benchmarks/inference_models.h)
//     engine: predict (Model::predict), call (Model::operator()), inference (InferenceModel),
//             int8 (quant::quantize, calibrated on 256 synthetic inputs)
//   prints "calls=<n> p50_us=<v> p99_us=<v> images_per_sec=<v>"
//   kiln_infer_bench --model cnn --export_onnx model.onnx [--int8]   writes the same model
//     (same seed; --int8: the quantized model as QDQ ONNX)
// The model's weights come from a fixed seed, so every engine (and the peers, through the
// exported file) runs the same network on the same input. For accuracy (Fashion-MNIST):
//   --train W.weights [--train_images N] [--epochs E]   trains the model, writes its weights
//   --write_data DIR [--calib_images 256] [--test_images 10000]   writes DIR/<model>_calib.npy (the first training
//     images, the calibration set every int8 engine uses), <model>_test_x.npy, <model>_test_y.npy
//     (the test set), all as the model's input
//   --weights W.weights   runs the trained model; --calib DIR/<model>_calib.npy calibrates int8
//     on those images (and --export_onnx --int8 too)
//   --accuracy_x X.npy --accuracy_y Y.npy   instead of timing, prints "accuracy=<top-1>" of
//     the engine on that set, in batches of 250
//   --trace_batch B   traces (inference, int8, --export_onnx) at batch B: MobileNetV3Small's
//     traced models run only at the batch they were traced with (inference_models.h)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "benchmarks/inference_models.h"
#include "data/fashion_mnist.h"
#include "data/npy.h"
#include "tensor/ops/ops.h"
#include "runtime_export/inference_model.h"
#include "tensor/threading.h"

namespace {
std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}
}  // namespace

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  kiln::cpu::apply_best_known_config(argc, argv, /*verbose=*/false);
  try {
    const std::string model_name = arg(argc, argv, "model", "mlp");
    const std::string dtype = arg(argc, argv, "dtype", "f32");
    const std::string engine = arg(argc, argv, "engine", "inference");
    // Model::predict in bf16 is the mixed-precision policy; the InferenceModel traces the f32
    // model and runs it in bf16.
    const std::string weights = arg(argc, argv, "weights", "");
    auto model = kiln::bench::make_inference_model(model_name, engine != "inference" && dtype == "bf16", weights);
    const std::string train = arg(argc, argv, "train", "");
    if (!train.empty()) {
      kiln::bench::train_on_fashion_mnist(*model, model_name, std::stoll(arg(argc, argv, "train_images", "60000")),
                                          std::stoll(arg(argc, argv, "epochs", "1")), train);
      std::printf("trained=%s\n", train.c_str());
      return 0;
    }
    const std::string data_dir = arg(argc, argv, "write_data", "");
    if (!data_dir.empty()) {
      kiln::data::FashionMnist fm = kiln::data::load_fashion_mnist();
      const int64_t calib_images = std::stoll(arg(argc, argv, "calib_images", "256"));
      const std::string stem = data_dir + "/" + model_name;
      kiln::data::write_npy(stem + "_calib.npy",
                            kiln::bench::fashion_mnist_input(model_name, kiln::slice(fm.x_train, 0, 0, calib_images)));
      const int64_t test_images = std::min<int64_t>(std::stoll(arg(argc, argv, "test_images", "10000")), fm.x_test.shape()[0]);
      kiln::data::write_npy(stem + "_test_x.npy",
                            kiln::bench::fashion_mnist_input(model_name, kiln::slice(fm.x_test, 0, 0, test_images)));
      kiln::data::write_npy(stem + "_test_y.npy", kiln::slice(fm.y_test, 0, 0, test_images));
      std::printf("wrote=%s_{calib,test_x,test_y}.npy\n", stem.c_str());
      return 0;
    }
    const int64_t trace_batch = std::stoll(arg(argc, argv, "trace_batch", "0"));
    const std::string calib_path = arg(argc, argv, "calib", "");
    const kiln::Tensor calib = calib_path.empty() ? kiln::Tensor() : kiln::data::read_npy(calib_path);
    const std::string onnx = arg(argc, argv, "export_onnx", "");
    bool int8_export = false;
    for (int i = 1; i < argc; ++i) int8_export = int8_export || std::string(argv[i]) == "--int8";
    if (!onnx.empty()) {
      kiln::bench::export_inference_model(*model, model_name, onnx, int8_export, calib, trace_batch);
      std::printf("exported=%s\n", onnx.c_str());
      return 0;
    }
    const int64_t batch = std::stoll(arg(argc, argv, "batch", "1"));
    const double seconds = std::stod(arg(argc, argv, "seconds", "3"));
    std::function<kiln::Tensor(const kiln::Tensor&)> infer;
    std::unique_ptr<kiln::runtime_export::InferenceModel> traced;
    if (engine == "predict") {
      infer = [&](const kiln::Tensor& in) { return model->predict(in, in.shape()[0]); };
    } else if (engine == "call") {
      infer = [&](const kiln::Tensor& in) { return (*model)(in); };
    } else if (engine == "int8") {
      traced = kiln::bench::quantize_inference_model(*model, model_name, calib, trace_batch);
      infer = [&](const kiln::Tensor& in) { return traced->run(in); };
    } else if (engine == "inference") {
      const int64_t fixed = kiln::bench::traced_batch(model_name, trace_batch);
      traced = kiln::runtime_export::trace(*model, kiln::bench::inference_input(model_name, fixed ? fixed : 2, 1),
                                           {.dtype = dtype == "bf16" ? kiln::DType::bf16 : kiln::DType::f32});
      infer = [&](const kiln::Tensor& in) { return traced->run(in); };
    } else {
      throw std::invalid_argument("unknown engine '" + engine + "' (predict, call, inference or int8)");
    }
    const std::string accuracy_x = arg(argc, argv, "accuracy_x", "");
    if (!accuracy_x.empty()) {
      kiln::Tensor x = kiln::data::read_npy(accuracy_x);
      kiln::Tensor y = kiln::data::read_npy(arg(argc, argv, "accuracy_y", ""));
      const int64_t n = x.shape()[0];
      if (y.dtype() != kiln::DType::s32 || y.shape() != kiln::Shape{n}) {
        throw std::invalid_argument("--accuracy_y must hold s32 labels [" + std::to_string(n) + "], got " + y.describe());
      }
      int64_t correct = 0;
      // The peers' batch (OpenVINO runs one static shape; 250 divides the 10000 test images).
      constexpr int64_t kAccuracyBatch = 250;
      for (int64_t start = 0; start < n; start += kAccuracyBatch) {
        const int64_t end = std::min(n, start + kAccuracyBatch);
        kiln::Tensor predicted = kiln::contiguous(kiln::argmax(kiln::cast(infer(kiln::slice(x, 0, start, end)),
                                                                          kiln::DType::f32), -1));
        const int32_t* p = predicted.data<int32_t>();
        for (int64_t i = start; i < end; ++i) correct += p[i - start] == y.data<int32_t>()[i];
      }
      std::printf("accuracy=%.4f images=%lld\n", static_cast<double>(correct) / n, static_cast<long long>(n));
      return 0;
    }
    kiln::Tensor x = kiln::bench::inference_input(model_name, batch, 7);
    std::function<void()> call = [&] { infer(x); };
    for (int i = 0; i < 5; ++i) call();
    std::vector<double> us;
    auto start = Clock::now();
    while (std::chrono::duration<double>(Clock::now() - start).count() < seconds || us.size() < 5) {
      auto t0 = Clock::now();
      call();
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    double total_s = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> sorted = us;
    std::sort(sorted.begin(), sorted.end());
    auto pct = [&](double p) { return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))]; };
    std::printf("calls=%zu p50_us=%.2f p99_us=%.2f images_per_sec=%.2f\n", us.size(), pct(0.50), pct(0.99),
                us.size() * batch / total_s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln_infer_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
