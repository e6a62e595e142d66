// int8 models (quant::quantize) exported as QDQ ONNX: onnx.checker accepts them and ONNX
// Runtime 1.31.1 gives the same classes as Kiln's int8 kernels and values within a few
// quantization steps of the last int8 layer.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "kiln.h"
#include "nn/applications/applications.h"
#include "quant/quantize.h"
#include "runtime_export/onnx/onnx_export.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"

namespace kiln {
namespace {

void check_qdq(nn::Model& model, const Tensor& calib, const Tensor& x, const std::string& name) {
  auto int8 = quant::quantize(model, data::Dataset::from_tensor_slices(calib).batch(32));
  const std::string path = testing::temp_path(name + "_qdq.onnx");
  runtime_export::export_onnx(int8->inference_graph(), path);
  testing::onnx_checker(path);
  auto ort = testing::run_onnx_runtime(path, {x});
  if (!ort) return;
  ASSERT_EQ(ort->size(), 1u);
  Tensor kiln_out = int8->run(x), ort_out = (*ort)[0];
  ASSERT_EQ(kiln_out.shape(), ort_out.shape());
  std::vector<int32_t> a = argmax(kiln_out, -1).to_int32(), b = argmax(ort_out, -1).to_int32();
  int same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  std::vector<float> kv = kiln_out.to_vector(), ov = ort_out.to_vector();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < kv.size(); ++i) {
    diff = std::max(diff, std::fabs(double(kv[i]) - ov[i]));
    scale = std::max(scale, std::fabs(double(kv[i])));
  }
  std::printf("%s: ONNX Runtime QDQ vs Kiln int8: argmax agreement %d/%zu, max abs diff %.4g (outputs up to %.3g)\n",
              name.c_str(), same, a.size(), diff, scale);
  EXPECT_GE(double(same) / a.size(), 0.95) << name;
  EXPECT_LE(diff, 0.1 * scale) << name;
}

TEST(QdqExport, KerasCnnRunsInOnnxRuntime) {
  set_global_seed(31);
  auto model = nn::applications::keras_cnn();
  Tensor calib = cast(random_uniform({64, 28, 28, 1}, 0.f, 255.f, 1), DType::u8);
  check_qdq(*model, calib, cast(random_uniform({64, 28, 28, 1}, 0.f, 255.f, 2), DType::u8), "keras_cnn");
}

TEST(QdqExport, MlpRunsInOnnxRuntime) {
  set_global_seed(32);
  auto model = nn::applications::fashion_mnist_mlp();
  Tensor calib = cast(random_uniform({64, 28, 28, 1}, 0.f, 255.f, 1), DType::u8);
  check_qdq(*model, calib, cast(random_uniform({64, 28, 28, 1}, 0.f, 255.f, 2), DType::u8), "mlp");
}

TEST(QdqExport, ResNetWithInt8ResidualsRunsInOnnxRuntime) {
  set_global_seed(33);
  auto model = nn::applications::resnet18({16, 16, 3});
  check_qdq(*model, random_uniform({32, 16, 16, 3}, -1.f, 1.f, 1), random_uniform({32, 16, 16, 3}, -1.f, 1.f, 2),
            "resnet18");
}

}  // namespace
}  // namespace kiln
