// Bring a model trained elsewhere to Kiln: load an ONNX file that PyTorch's torch.onnx.export
// wrote (NCHW in and out), run it with InferenceModel, quantize it to int8 with accuracy
// control, save the int8 model as a Kiln model file and export it back to ONNX (QDQ), which
// ONNX Runtime runs.
//   bazel run //examples:run_foreign_onnx -- [--model tests/data/foreign_onnx/resnet10.onnx]
//       [--images 256] [--out /tmp/foreign_int8] [--smoke]
// With no labelled data for a foreign model, the labels are the fp32 model's own top-1: the
// accuracy criterion then bounds how often int8 changes the model's answer.
#include <chrono>
#include <cstdio>

#include "examples/example_flags.h"
#include "kiln.h"
#include "quant/quantize.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/model_file.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"

namespace {

double run_ms(const kiln::runtime_export::InferenceModel& model, const kiln::Tensor& x) {
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
    const bool smoke = examples::switch_flag(argc, argv, "smoke");
    const std::string path = examples::flag(argc, argv, "model", "tests/data/foreign_onnx/resnet10.onnx");
    const int64_t images = examples::int_flag(argc, argv, "images", smoke ? 64 : 256);
    const std::string out = examples::flag(argc, argv, "out", "/tmp/foreign_int8");
    if (images < 2) throw std::invalid_argument("--images must be at least 2, got " + std::to_string(images));

    graph::Graph g = runtime_export::import_onnx(path);
    Shape input = g.values[g.inputs.at(0)].shape;
    std::printf("imported %s: %zu nodes, input %s\n", path.c_str(), g.nodes.size(), shape_str(input).c_str());
    input[0] = images;  // the file's batch dimension is symbolic
    for (int64_t d : input) {
      if (d <= 0) throw std::invalid_argument(path + ": input shape " + shape_str(input) + " has a symbolic dimension besides the batch");
    }
    Tensor x = random_normal(input, 0.f, 1.f, 7);

    runtime_export::InferenceModel fp32(g);
    Tensor logits = fp32.run(x);
    Tensor labels = argmax(logits, -1);  // the fp32 model's answers
    std::printf("fp32: logits %s, %.2f ms for %lld images\n", shape_str(logits.shape()).c_str(), run_ms(fp32, x),
                static_cast<long long>(images));

    // Half the images calibrate; the other half decide whether int8 keeps the fp32 answers.
    const int64_t half = images / 2;
    auto calib = data::Dataset::from_tensor_slices(slice(x, 0, 0, half)).batch(32);
    auto eval = data::Dataset::from_tensor_slices(slice(x, 0, half, images), slice(labels, 0, half, images)).batch(64);
    quant::QuantizationReport report;
    auto int8 = quant::quantize(g, calib,
                                {.metric = "accuracy",
                                 .eval_data = eval,
                                 .accuracy_criterion = {.relative = 0.05, .higher_is_better = true},
                                 .max_trials = 5},
                                &report);
    const quant::Trial& chosen = report.trials[report.chosen];
    std::printf("f32 accuracy %.4f, int8 accuracy %.4f (agreement with fp32's top-1; trial %d: %s)\n", report.baseline,
                chosen.metric, chosen.index, chosen.config.c_str());
    std::printf("int8: %.2f ms for %lld images\n", run_ms(*int8, x), static_cast<long long>(images));

    runtime_export::save_inference_model(*int8, out + ".kgraph");
    runtime_export::export_onnx(int8->inference_graph(), out + ".onnx");
    std::printf("int8 model saved to %s.kgraph; QDQ ONNX written to %s.onnx\n", out.c_str(), out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "run_foreign_onnx: %s\n", e.what());
    return 1;
  }
  return 0;
}
