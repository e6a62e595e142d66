// quant::quantize(): full quantization without a metric, accuracy-aware tuning (basic and
// calibration strategies), the error that carries the best trial, bf16, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <oneapi/dnnl/dnnl.hpp>

#include "kiln.h"
#include "graph/trace.h"
#include "quant/quantize.h"
#include "runtime_export/model_file.h"
#include "tests/blobs.h"
#include "tests/temp_path.h"

namespace kiln {
namespace {

using quant::QuantizeOptions;

std::unique_ptr<nn::Sequential> trained_blob_model() {
  set_global_seed(3);
  auto model = std::make_unique<nn::Sequential>(std::vector<nn::Layer>{nn::Dense(32, "relu"), nn::Dense(16, "relu"), nn::Dense(3)});
  model->compile(optim::Adam(1e-2), nn::SparseCategoricalCrossentropy(true), {"accuracy"});
  model->fit(testing::blobs(600, 1).shuffle(600, 3).batch(32), {.epochs = 5, .verbose = 0});
  return model;
}

int count(const graph::Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes) n += node.call.op() == op;
  return n;
}

TEST(Quantize, WithoutAMetricQuantizesEverythingAndKeepsTheCompileState) {
  auto model = trained_blob_model();
  auto q = quant::quantize(*model, testing::blobs(300, 5).batch(50));
  EXPECT_EQ(count(q->inference_graph(), "qlinear"), 3) << q->inference_graph().to_string();
  data::Dataset test = testing::blobs(300, 6).batch(100);
  double f32 = model->evaluate(test).at("accuracy"), int8 = q->evaluate(test).at("accuracy");
  EXPECT_GT(f32, 0.9);
  EXPECT_GE(int8, f32 - 0.02);
}

TEST(Quantize, AccuracyControlAcceptsTheFullyQuantizedModelWhenItIsGoodEnough) {
  auto model = trained_blob_model();
  quant::QuantizationReport report;
  auto q = quant::quantize(*model, testing::blobs(300, 5).batch(50),
                           {.metric = "accuracy", .eval_data = testing::blobs(300, 6).batch(100),
                            .accuracy_criterion = {.relative = 0.05}},
                           &report);
  ASSERT_EQ(report.trials.size(), 1u);
  EXPECT_EQ(report.chosen, 0);
  EXPECT_TRUE(report.trials[0].accepted);
  EXPECT_GT(report.baseline, 0.9);
  EXPECT_GT(report.trials[0].latency_ms, 0);
}

TEST(Quantize, BasicFallsBackTheMostSensitiveLayersAndThrowsTheBestWhenNothingPasses) {
  auto model = trained_blob_model();
  // A metric no int8 model can match exactly: the mean of the logits, with a zero tolerance.
  QuantizeOptions o{.metric_fn = [](const Tensor& p, const Tensor&) { return reduce_mean(p, {0, 1}, false).item(); },
                    .eval_data = testing::blobs(90, 6).batch(30),
                    .accuracy_criterion = {.absolute = 1e-12},
                    .max_trials = 3,
                    .verbose = false};
  quant::QuantizationReport report;
  try {
    quant::quantize(*model, testing::blobs(90, 5).batch(30), o, &report);
    ADD_FAILURE() << "a zero-tolerance criterion was met";
  } catch (const quant::AccuracyNotMet& e) {
    EXPECT_NE(std::string(e.what()).find("no configuration met"), std::string::npos) << e.what();
    EXPECT_GE(e.best.index, 1);
  }
  ASSERT_EQ(report.trials.size(), 3u);  // full int8, then one and two layers in f32
  EXPECT_EQ(report.trials[0].config, "int8 minmax");
  EXPECT_NE(report.trials[1].config.find("f32: "), std::string::npos);
  EXPECT_NE(report.trials[2].config.find(", "), std::string::npos) << report.trials[2].config;

  // With the whole model in f32 the metric is met exactly: the search reaches it.
  o.max_trials = 10;
  o.accuracy_criterion = {.absolute = 1e-5};
  auto q = quant::quantize(*model, testing::blobs(90, 5).batch(30), o, &report);
  EXPECT_GE(report.chosen, 0);
  EXPECT_TRUE(report.trials[report.chosen].accepted);
}

TEST(Quantize, CalibrationStrategyTriesEachMethod) {
  auto model = trained_blob_model();
  quant::QuantizationReport report;
  quant::quantize(*model, testing::blobs(300, 5).batch(50),
                  {.metric = "accuracy", .eval_data = testing::blobs(300, 6).batch(100),
                   .accuracy_criterion = {.relative = 0.05}, .tuning_strategy = "calibration", .verbose = false},
                  &report);
  ASSERT_EQ(report.trials.size(), 3u);
  EXPECT_EQ(report.trials[0].config, "int8 minmax");
  EXPECT_EQ(report.trials[1].config, "int8 percentile");
  EXPECT_EQ(report.trials[2].config, "int8 kl");
}

TEST(Quantize, Bf16IsATargetPrecisionToo) {
  auto model = trained_blob_model();
  auto q = quant::quantize(*model, testing::blobs(60, 5).batch(30), {.precision = DType::bf16});
  EXPECT_EQ(q->dtype(), DType::bf16);
}

TEST(Quantize, SavedAndLoadedInt8ModelGivesTheSameOutputs) {
  auto model = trained_blob_model();
  auto q = quant::quantize(*model, testing::blobs(300, 5).batch(50));
  std::string path = testing::temp_path("int8_model.kgraph");
  runtime_export::save_inference_model(*q, path);
  auto back = runtime_export::load_inference_model(path);
  Tensor x = random_uniform({7, 2}, -3.f, 3.f, 9);
  EXPECT_EQ(back->run(x).to_vector(), q->run(x).to_vector());
  EXPECT_EQ(count(back->inference_graph(), "qlinear"), 3);
  // A damaged file is a clear error, not a crash or a half-loaded model.
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[bytes.size() / 2] ^= 0x40;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  EXPECT_THROW(runtime_export::load_inference_model(path), std::runtime_error);
}

TEST(Quantize, BadInputIsAClearError) {
  auto model = trained_blob_model();
  auto expect_error = [&](const data::Dataset& calib, const QuantizeOptions& o, const std::string& fragment) {
    try {
      quant::quantize(*model, calib, o);
      ADD_FAILURE() << "accepted; expected an error naming " << fragment;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  data::Dataset good = testing::blobs(60, 5).batch(30);
  expect_error(testing::blobs(60, 5).take(0).batch(30), {}, "empty");
  expect_error(testing::blobs(60, 5), {}, "batched");
  expect_error(data::Dataset::from_tensor_slices(Tensor::zeros({8, 3})).batch(4), {}, "f32[4, 3]");
  // quantize.h promises an error naming the calibration data, not one from inside a layer.
  expect_error(data::Dataset::from_tensor_slices(Tensor::zeros({8, 3})).batch(4), {},
               "the calibration data's batches are f32[4, 3], but model");
  expect_error(data::Dataset::from_tensor_slices(Tensor::zeros({8, 2, 1})).batch(4), {}, "takes f32[N, 2]");
  // Through a traced graph the same, with the traced input type.
  graph::Graph g = graph::trace(*model, Tensor::zeros({2, 2}));
  try {
    quant::quantize(g, data::Dataset::from_tensor_slices(Tensor::zeros({8, 3})).batch(4));
    ADD_FAILURE() << "a graph quantized with calibration data of the wrong shape";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("calibration data's batches are f32[4, 3], but the graph's input takes f32[N, 2]"),
              std::string::npos) << e.what();
  }
  expect_error(good, {.metric = "accuracy"}, "eval_data");
  expect_error(good, {.metric = "f1"}, "unknown metric");
  expect_error(good,
               {.metric_fn = [](const Tensor&, const Tensor&) -> double { throw std::runtime_error("boom"); },
                .eval_data = good},
               "the metric threw: boom");
  expect_error(good, {.tuning_strategy = "random"}, "tuning_strategy");
}

// quantize_linear maps NaN to the zero point, so without the model boundary's check a NaN
// input would come out of an int8 model as ordinary numbers. Its row comes out NaN instead,
// the other rows are untouched, infinity saturates (quantization's rule), and a NaN check on
// the loss (what TerminateOnNaN does in training) fires on evaluate().
TEST(Quantize, NanInputRowsComeOutNanFromAnInt8Model) {
  auto model = trained_blob_model();
  auto q = quant::quantize(*model, testing::blobs(300, 5).batch(50));
  Tensor x = testing::blobs(6, 9).batch(6).begin_iteration().next().value().x.clone_detached();
  ASSERT_EQ(x.shape(), (Shape{6, 2}));
  Tensor clean = q->run(x);
  Tensor bad = x.clone_detached();
  bad.data<float>()[2 * 2 + 1] = NAN;  // row 2
  bad.data<float>()[4 * 2] = INFINITY;  // row 4
  Tensor y = q->run(bad);
  ASSERT_EQ(y.shape(), clean.shape());
  std::vector<float> yv = y.to_vector(), cv = clean.to_vector();
  const int64_t classes = y.shape()[1];
  for (int64_t r = 0; r < 6; ++r) {
    for (int64_t c = 0; c < classes; ++c) {
      float got = yv[r * classes + c];
      if (r == 2) {
        EXPECT_TRUE(std::isnan(got)) << "row " << r << " col " << c << " = " << got;
      } else if (r == 4) {
        EXPECT_TRUE(std::isfinite(got)) << "infinity saturates in int8, row " << r << " = " << got;
      } else {
        EXPECT_NEAR(got, cv[r * classes + c], 1e-6) << "row " << r << " changed";
      }
    }
  }
  Tensor labels = Tensor::zeros({6}, DType::s32);
  nn::Logs logs = q->evaluate(data::Dataset::from_tensor_slices(bad, labels).batch(6));
  EXPECT_TRUE(std::isnan(logs.at("loss"))) << "loss " << logs.at("loss");
  nn::Logs clean_logs = q->evaluate(data::Dataset::from_tensor_slices(x, labels).batch(6));
  EXPECT_TRUE(std::isfinite(clean_logs.at("loss")));
}

// MobileNetV3's inverted residual block with squeeze-excite, twice: 1x1 expand, depthwise,
// GlobalAveragePooling2D(keepdims) -> 1x1 conv -> ReLU -> 1x1 conv -> hard_sigmoid, Multiply,
// 1x1 project, residual Add. The stem's ReLU makes block 1's expand conv read u8 and the Add
// makes block 2's read s8, so the int8 plan packs 48x16 1x1 weights without and with s8s8
// compensation, and the squeeze-excite's second conv (u8 after ReLU) packs them again: the
// layouts once shared a cached reorder, which corrupted the heap or left the compensation
// unwritten.
std::unique_ptr<nn::Model> squeeze_excite_model() {
  using namespace nn;
  set_global_seed(11);
  auto conv1x1 = [](int64_t filters) { return Conv2D(filters, 1, "", {.padding = "same"}); };
  SymbolicTensor in = Input({8, 8, 3});
  SymbolicTensor x = ReLU()(Conv2D(16, 3, "", {.padding = "same"})(in));
  for (int block = 0; block < 2; ++block) {
    SymbolicTensor h = Activation("hard_swish")(conv1x1(48)(x));
    h = Activation("hard_swish")(DepthwiseConv2D(3, "", {.padding = "same"})(h));
    SymbolicTensor se = GlobalAveragePooling2D(true)(h);
    se = ReLU()(conv1x1(16)(se));
    se = Activation("hard_sigmoid")(conv1x1(48)(se));
    h = Multiply()({h, se});
    x = Add()({x, conv1x1(16)(h)});
  }
  return std::make_unique<Model>(in, Dense(5)(GlobalAveragePooling2D()(x)), "squeeze_excite");
}

TEST(Quantize, SqueezeExciteBlocksRunInInt8CloseToFloat) {
  auto model = squeeze_excite_model();
  Tensor x = random_uniform({16, 8, 8, 3}, -1.f, 1.f, 5);
  Tensor want = (*model)(x);
  auto q = quant::quantize(*model, data::Dataset::from_tensor_slices(x).batch(16));
  EXPECT_EQ(count(q->inference_graph(), "qconv2d"), 11) << q->inference_graph().to_string();
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  const bool vnni = isa == dnnl::cpu_isa::avx512_core_vnni || isa == dnnl::cpu_isa::avx512_core_bf16 ||
                    isa == dnnl::cpu_isa::avx512_core_amx || isa == dnnl::cpu_isa::avx2_vnni;
  for (int run = 0; run < 3; ++run) {  // a corrupted heap or unwritten compensation shows by now
    Tensor got = q->run(x);
    ASSERT_EQ(got.shape(), want.shape());
    std::vector<float> g = got.to_vector(), w = want.to_vector();
    double max_abs = 0, max_err = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      max_abs = std::max(max_abs, std::fabs(double(w[i])));
      max_err = std::max(max_err, std::fabs(double(g[i]) - w[i]));
    }
    // Calibrated on these inputs. With VNNI: 0.6% of the largest logit measured, 5.6% with the
    // compensation unwritten; 3% separates the two. Without VNNI (ONEDNN_MAX_CPU_ISA=AVX2 or
    // AVX512_CORE) oneDNN's int8 convolutions measured 7.7% here even when correct, so there
    // the bound is 10%, and overhead_test's PrimitiveCacheKey guard catches the old bug there.
    EXPECT_LE(max_err, (vnni ? 0.03 : 0.10) * max_abs) << "run " << run << ": max |logit| " << max_abs;
    if (run == 0) std::printf("squeeze-excite int8: max abs error %.3g, max |logit| %.3g\n", max_err, max_abs);
  }
}

}  // namespace
}  // namespace kiln
