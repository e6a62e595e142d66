// Train a Keras-style CNN on Fashion-MNIST, serve it through Kiln's fused InferenceModel,
// quantize it to int8 and export it to ONNX: everything through "kiln.h" (//:kiln).
// `--smoke` trains and tests on a few batches (the docs test runs it that way).
#include <cstdio>
#include <filesystem>
#include <string>

#include "kiln.h"

int main(int argc, char** argv) {
  using namespace kiln;
  using namespace kiln::nn;
  cpu::apply_best_known_config(argc, argv);  // OpenMP threads for this machine (may re-exec once)
  const bool smoke = argc > 1 && std::string(argv[1]) == "--smoke";
  try {
    set_global_seed(1234);
    data::FashionMnist fm = data::load_fashion_mnist();  // Debian's dataset-fashion-mnist
    auto train = data::Dataset::from_tensor_slices(fm.x_train, fm.y_train).shuffle(60000, 42).batch(32);
    auto test = data::Dataset::from_tensor_slices(fm.x_test, fm.y_test).batch(500);
    if (smoke) train = train.take(8), test = test.take(2);

    Conv2DOptions same;
    same.padding = "same";
    Sequential model({Rescaling(1.f / 255), Conv2D(16, 3, "relu", same), MaxPooling2D(),
                      Conv2D(32, 3, "relu", same), MaxPooling2D(), Flatten(), Dense(128, "relu"), Dense(10)});
    model.build({28, 28, 1}, DType::u8);
    model.compile(optim::Adam(1e-3), SparseCategoricalCrossentropy(/*from_logits=*/true), {"accuracy"});
    model.fit(train.prefetch(2), {.epochs = smoke ? 1 : 3, .validation_data = test});

    Tensor sample = slice(fm.x_test, 0, 0, 2);                   // batch size stays free
    auto fast = runtime_export::trace(model, sample);           // fused, prepacked oneDNN plan
    auto int8 = quant::quantize(model, train.take(10));         // calibrated on 10 batches
    std::printf("test accuracy: Model %.4f, InferenceModel %.4f, int8 %.4f\n", model.evaluate(test)["accuracy"],
                fast->evaluate(test)["accuracy"], int8->evaluate(test)["accuracy"]);

    std::string onnx = (std::filesystem::temp_directory_path() / "quickstart_cnn.onnx").string();
    runtime_export::export_onnx(model, {sample}, onnx);          // NHWC input, opset 17
    std::printf("ONNX model written to %s\n", onnx.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quickstart: %s\n", e.what());
    return 1;
  }
  return 0;
}
