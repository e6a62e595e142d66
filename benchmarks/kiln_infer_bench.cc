// Times inference of one model with one Kiln engine, for inference_compare.py:
//   kiln_infer_bench --model cnn --engine inference --dtype f32 --batch 1 --seconds 3
//     engine: predict (Model::predict), call (Model::operator()), inference (InferenceModel),
//             int8 (quant::quantize, calibrated on 256 synthetic inputs)
//   prints "calls=<n> p50_us=<v> p99_us=<v> images_per_sec=<v>"
//   kiln_infer_bench --model cnn --export_onnx model.onnx [--int8]   writes the same model
//     (same seed; --int8: the quantized model as QDQ ONNX)
//   kiln_infer_bench --model cnn --export_calibration images.f32   writes the calibration images
//     quant::quantize uses here, raw f32 row-major, for ONNX Runtime's quantize_static
// The model's weights come from a fixed seed, so every engine (and ONNX Runtime, through the
// exported file) runs the same network on the same input.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "benchmarks/inference_models.h"
#include "runtime_export/inference_model.h"
#include "tensor/ops/ops.h"
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
    auto model = kiln::bench::make_inference_model(model_name, engine != "inference" && dtype == "bf16");
    const std::string onnx = arg(argc, argv, "export_onnx", "");
    bool int8_export = false;
    for (int i = 1; i < argc; ++i) int8_export = int8_export || std::string(argv[i]) == "--int8";
    const std::string calibration = arg(argc, argv, "export_calibration", "");
    if (!calibration.empty()) {
      kiln::Tensor images = kiln::cast(kiln::bench::calibration_images(model_name), kiln::DType::f32);
      std::vector<float> v = images.to_vector();
      std::FILE* f = std::fopen(calibration.c_str(), "wb");
      bool written = f && std::fwrite(v.data(), sizeof(float), v.size(), f) == v.size();
      if (f && std::fclose(f) != 0) written = false;
      if (!written) {
        throw std::runtime_error("cannot write the calibration images to '" + calibration + "'");
      }
      std::printf("calibration=%s images=%lld\n", calibration.c_str(), (long long)images.shape()[0]);
      return 0;
    }
    if (!onnx.empty()) {
      kiln::bench::export_inference_model(*model, model_name, onnx, int8_export);
      std::printf("exported=%s\n", onnx.c_str());
      return 0;
    }
    const int64_t batch = std::stoll(arg(argc, argv, "batch", "1"));
    const double seconds = std::stod(arg(argc, argv, "seconds", "3"));
    kiln::Tensor x = kiln::bench::inference_input(model_name, batch, 7);
    std::function<void()> call;
    std::unique_ptr<kiln::runtime_export::InferenceModel> traced;
    if (engine == "predict") {
      call = [&] { model->predict(x, batch); };
    } else if (engine == "call") {
      call = [&] { (*model)(x); };
    } else if (engine == "int8") {
      traced = kiln::bench::quantize_inference_model(*model, model_name);
      call = [&] { traced->run(x); };
    } else if (engine == "inference") {
      traced = kiln::runtime_export::trace(*model,
                                           kiln::bench::inference_input(model_name, kiln::bench::trace_batch(model_name), 1),
                                           {.dtype = dtype == "bf16" ? kiln::DType::bf16 : kiln::DType::f32});
      call = [&] { traced->run(x); };
    } else {
      throw std::invalid_argument("unknown engine '" + engine + "' (predict, call, inference or int8)");
    }
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
