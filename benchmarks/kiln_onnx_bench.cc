// Times Kiln on an ONNX file it imports, for foreign_onnx_bench.py (issue 23):
//   kiln_onnx_bench --model_file m.onnx --engine inference --batch 32 --seconds 2
//     engine: inference (InferenceModel fp32 of the imported graph),
//             int8 (quant::quantize of the imported graph, minmax, calibrated on --calib),
//             qdq (InferenceModel of a QDQ file, e.g. ONNX Runtime's quantize_static output)
//   prints "calls=<n> p50_us=<v> p99_us=<v> images_per_sec=<v>" as kiln_infer_bench does;
//   --accuracy_x X.npy --accuracy_y Y.npy prints "accuracy=<top-1>" instead of timing;
//   --accuracy_x X.npy --predictions_out P.npy writes the top-1 class of each image (s32), the
//   agreement reference when ONNX Runtime is not there to give one.
// The input is uniform in [-1, 1] in the file's input shape with the batch set, as
// peer_infer_bench.py feeds ONNX Runtime.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/npy.h"
#include "quant/quantize.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"
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
  using namespace kiln;
  cpu::apply_best_known_config(argc, argv, /*verbose=*/false);
  try {
    const std::string path = arg(argc, argv, "model_file", "");
    const std::string engine = arg(argc, argv, "engine", "inference");
    if (path.empty()) throw std::invalid_argument("--model_file is required");
    graph::Graph g = runtime_export::import_onnx(path);
    std::unique_ptr<runtime_export::InferenceModel> model;
    if (engine == "inference" || engine == "qdq") {
      model = std::make_unique<runtime_export::InferenceModel>(g);
    } else if (engine == "int8") {
      const std::string calib_path = arg(argc, argv, "calib", "");
      if (calib_path.empty()) throw std::invalid_argument("--engine int8 needs --calib images.npy");
      Tensor calib = data::read_npy(calib_path);
      model = quant::quantize(g, data::Dataset::from_tensor_slices(calib).batch(32), {.verbose = false});
    } else {
      throw std::invalid_argument("unknown engine '" + engine + "' (inference, int8 or qdq)");
    }
    const std::string accuracy_x = arg(argc, argv, "accuracy_x", "");
    if (!accuracy_x.empty()) {
      Tensor x = data::read_npy(accuracy_x);
      const int64_t n = x.shape()[0];
      const std::string predictions_out = arg(argc, argv, "predictions_out", "");
      std::vector<int32_t> labels;
      if (predictions_out.empty()) {
        Tensor y = data::read_npy(arg(argc, argv, "accuracy_y", ""));
        if (y.dtype() != DType::s32 || y.shape() != Shape{n}) {
          throw std::invalid_argument("--accuracy_y must hold s32 labels [" + std::to_string(n) + "], got " + y.describe());
        }
        labels = y.to_int32();
      }
      std::vector<int32_t> predicted;
      for (int64_t start = 0; start < n; start += 256) {
        std::vector<int32_t> batch = argmax(model->run(slice(x, 0, start, std::min(n, start + 256))), -1).to_int32();
        predicted.insert(predicted.end(), batch.begin(), batch.end());
      }
      if (!predictions_out.empty()) {
        data::write_npy(predictions_out, Tensor::from_int32(predicted, {n}));
        std::printf("predictions=%lld\n", static_cast<long long>(n));
        return 0;
      }
      int64_t correct = 0;
      for (int64_t i = 0; i < n; ++i) correct += predicted[i] == labels[i];
      std::printf("accuracy=%.4f images=%lld\n", static_cast<double>(correct) / n, static_cast<long long>(n));
      return 0;
    }
    const int64_t batch = std::stoll(arg(argc, argv, "batch", "1"));
    const double seconds = std::stod(arg(argc, argv, "seconds", "2"));
    Shape shape = g.values[g.inputs.at(0)].shape;
    shape[0] = batch;
    Tensor x = random_uniform(shape, -1.f, 1.f, 7);
    for (int i = 0; i < 5; ++i) model->run(x);
    std::vector<double> us;
    auto start = Clock::now();
    while (std::chrono::duration<double>(Clock::now() - start).count() < seconds || us.size() < 5) {
      auto t0 = Clock::now();
      model->run(x);
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    const double total_s = std::chrono::duration<double>(Clock::now() - start).count();
    std::sort(us.begin(), us.end());
    auto pct = [&](double p) { return us[std::min(us.size() - 1, static_cast<size_t>(p * us.size()))]; };
    std::printf("calls=%zu p50_us=%.2f p99_us=%.2f images_per_sec=%.2f\n", us.size(), pct(0.50), pct(0.99),
                us.size() * batch / total_s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln_onnx_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
