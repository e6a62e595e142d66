// A vision transformer (nn/applications/vision_transformer.h) on Fashion-MNIST: 4x4 patches
// embedded by a strided Conv2D, a learned position embedding (AddPositionEmbedding), pre-norm
// encoder blocks (LayerNormalization, MultiHeadAttention, a gelu MLP, residual Adds), global
// average pooling and a Dense head; AdamW (warmup, then cosine decay) and sparse categorical
// cross-entropy. Then the inference flow: trace to InferenceModel in fp32 and bf16, quantize to
// int8 with accuracy control (the Dense and attention projections go int8; LayerNorm and
// attention's softmax stay f32), and export to ONNX.
//   bazel run -c opt //examples:vit_fashion_mnist -- [--epochs 5] [--batch_size 32] [--seed 1234]
//       [--patch_size 4] [--dim 64] [--depth 4] [--num_heads 4] [--mlp_dim 128]
//       [--out /tmp/vit_fashion_mnist] [--smoke]
// Writes <out>.onnx (fp32), <out>.kgraph (the fp32 InferenceModel, which ONNX Runtime should
// match within 1e-4 on the same images: examples_test checks it) and <out>_int8.kgraph.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "examples/example_data.h"
#include "examples/example_flags.h"
#include "kiln.h"
#include "nn/applications/vision_transformer.h"
#include "quant/quantize.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/model_file.h"
#include "runtime_export/onnx/onnx_export.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kiln;
  cpu::apply_best_known_config(argc, argv);
  try {
    bool smoke = examples::switch_flag(argc, argv, "smoke");
    // Under --smoke, more epochs of the small slice: a ViT needs ~200 updates to get well past
    // chance. Batches of 32 (Keras's default) reached 88.3% in 5 epochs where 64 reached 87.9%.
    int64_t epochs = examples::int_flag(argc, argv, "epochs", smoke ? 3 : 5);
    int64_t batch_size = examples::int_flag(argc, argv, "batch_size", 32);
    nn::applications::VisionTransformerOptions vit;
    vit.patch_size = examples::int_flag(argc, argv, "patch_size", vit.patch_size);
    vit.dim = examples::int_flag(argc, argv, "dim", vit.dim);
    vit.depth = examples::int_flag(argc, argv, "depth", smoke ? 2 : vit.depth);  // --smoke: CI's time
    vit.num_heads = examples::int_flag(argc, argv, "num_heads", vit.num_heads);
    vit.mlp_dim = examples::int_flag(argc, argv, "mlp_dim", vit.mlp_dim);
    std::string out = examples::flag(argc, argv, "out", "/tmp/vit_fashion_mnist");
    set_global_seed(examples::int_flag(argc, argv, "seed", 1234));
    std::cout << cpu::isa_report() << "\n";

    data::FashionMnist fm = examples::load_example_data(smoke);
    auto train = data::Dataset::from_tensor_slices(fm.x_train, fm.y_train).shuffle(60000, 42).batch(batch_size).prefetch(2);
    const int64_t eval_batch = smoke ? 256 : 500;
    auto test = data::Dataset::from_tensor_slices(fm.x_test, fm.y_test).batch(eval_batch);

    auto model = nn::applications::vision_transformer(vit);
    std::printf("ViT: %lldx%lld patches (%lld tokens), dim %lld, %lld blocks of %lld heads, MLP %lld: %lld parameters\n",
                (long long)vit.patch_size, (long long)vit.patch_size,
                (long long)((28 / vit.patch_size) * (28 / vit.patch_size)), (long long)vit.dim, (long long)vit.depth,
                (long long)vit.num_heads, (long long)vit.mlp_dim, (long long)model->count_params());
    // The usual ViT recipe: AdamW, a linear warmup over the first tenth of the steps, then a
    // cosine decay to zero by the last step.
    const int64_t train_images = fm.x_train.shape()[0];
    const int64_t total_steps = epochs * ((train_images + batch_size - 1) / batch_size);
    auto schedule = std::make_shared<optim::LinearWarmup>(
        std::max<int64_t>(1, total_steps / 10), std::make_shared<optim::CosineDecay>(1e-3f, total_steps - total_steps / 10));
    model->compile(optim::AdamW({.schedule = schedule}), nn::SparseCategoricalCrossentropy(/*from_logits=*/true),
                   {"accuracy"});
    auto start = std::chrono::steady_clock::now();
    model->fit(train, {.epochs = epochs, .validation_data = test, .verbose = 2});
    double train_s = seconds_since(start);
    nn::Logs result = model->evaluate(test);
    std::printf("trained %lld epochs in %.0f s: test accuracy %.4f\n", (long long)epochs, train_s, result["accuracy"]);

    // BigDL-Nano's trace: fp32 and bf16 InferenceModels (the batch dimension stays free).
    Tensor sample = slice(fm.x_test, 0, 0, 2);
    auto fp32 = runtime_export::trace(*model, sample);
    auto bf16 = runtime_export::trace(*model, sample, {.dtype = DType::bf16});
    std::printf("test accuracy  Model %.4f  InferenceModel fp32 %.4f  bf16 %.4f\n", result["accuracy"],
                fp32->evaluate(test)["accuracy"], bf16->evaluate(test)["accuracy"]);

    // int8 with accuracy control: 1000 training images (256 under --smoke) calibrate, the test
    // set judges.
    auto calib = data::Dataset::from_tensor_slices(fm.x_train).take(smoke ? 256 : 1000).batch(eval_batch);
    quant::QuantizationReport report;
    auto int8 = quant::quantize(*model, calib,
                                {.metric = "accuracy",
                                 .eval_data = test,
                                 .accuracy_criterion = {.relative = 0.01, .higher_is_better = true},
                                 .max_trials = smoke ? 3 : 10},
                                &report);
    for (const quant::Trial& t : report.trials) {
      std::printf("  trial %d: %s  accuracy %.4f  drop %.2f%%  %s\n", t.index, t.config.c_str(), t.metric,
                  100 * t.relative_drop, t.accepted ? "accepted" : "rejected");
    }
    const quant::Trial& chosen = report.trials[report.chosen];
    std::printf("f32 accuracy %.4f, int8 accuracy %.4f (trial %d)\n", report.baseline, chosen.metric, chosen.index);

    runtime_export::export_onnx(*model, {sample}, out + ".onnx");
    runtime_export::save_inference_model(*fp32, out + ".kgraph");
    runtime_export::save_inference_model(*int8, out + "_int8.kgraph");
    std::printf("ONNX model written to %s.onnx (input '%s', NHWC uint8 [batch, 28, 28, 1]); InferenceModels to "
                "%s.kgraph and %s_int8.kgraph\n",
                out.c_str(), fp32->inference_graph().values[fp32->inference_graph().inputs[0]].name.c_str(),
                out.c_str(), out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vit_fashion_mnist: %s\n", e.what());
    return 1;
  }
  return 0;
}
