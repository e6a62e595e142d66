// LSTM, GRU, SimpleRNN and Bidirectional (nn/layers/recurrent.h, bidirectional.h) against
// Keras 3.15.1 on the same weights (tests/data/recurrent: reference.json and its generator),
// with masks; configs, save/load, trace, Graph::run, InferenceModel, ONNX through ONNX Runtime
// and back, and the options Kiln refuses.
#include <gtest/gtest.h>

#include <cstdio>

#include "base/files.h"
#include "base/json.h"
#include "graph/trace.h"
#include "kiln.h"
#include "nn/layer_registry.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_export.h"
#include "tests/json_tensor.h"
#include "tests/onnx_round_trip.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using testing::tensor_of_json;

using testing::bitwise_equal;

using namespace kiln::nn;
using base::Json;
using testing::max_abs_diff;
using testing::temp_path;

const Json& reference() {
  static const Json ref = base::parse_json(base::read_file("tests/data/recurrent/reference.json"), "reference.json");
  return ref;
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  for (const Json& c : reference().at("cases").items()) names.push_back(c.at("name").as_string());
  return names;
}

const Json& keras_case(const std::string& name) {
  for (const Json& c : reference().at("cases").items()) {
    if (c.at("name").as_string() == name) return c;
  }
  throw std::runtime_error("no case " + name);
}

Layer keras_layer(const Json& c) {
  RecurrentOptions o;
  const Json& opt = c.at("options");
  if (opt.has("return_sequences")) o.return_sequences = opt.at("return_sequences").as_bool();
  if (opt.has("go_backwards")) o.go_backwards = opt.at("go_backwards").as_bool();
  if (opt.has("use_bias")) o.use_bias = opt.at("use_bias").as_bool();
  const std::string cls = c.at("class_name").as_string();
  const int64_t units = c.at("units").as_int();
  Layer layer = cls == "LSTM" ? LSTM(units, o) : cls == "GRU" ? GRU(units, o) : SimpleRNN(units, o);
  if (c.has("merge_mode")) layer = Bidirectional(layer, c.at("merge_mode").as_string());
  return layer;
}

// Keras's weights, in layer.weights order (kernel, recurrent_kernel, bias; forward first).
void assign_keras_weights(Layer& layer, const Json& c) {
  std::vector<Variable> vars = layer->variables();
  const Json& weights = c.at("weights");
  ASSERT_EQ(vars.size(), weights.size());
  for (size_t i = 0; i < vars.size(); ++i) {
    Tensor w = tensor_of_json(weights[i]);
    const std::string path = c.at("weight_paths")[i].as_string();
    ASSERT_EQ(w.shape(), vars[i].shape()) << path << " vs " << vars[i].name();  // Keras's layout
    // The variable names end as Keras's paths do (kernel, recurrent_kernel, bias).
    const std::string leaf = path.substr(path.rfind('/') + 1);
    EXPECT_EQ(vars[i].name().substr(vars[i].name().rfind('/') + 1), leaf);
    vars[i].assign(w);
  }
}

class KerasReference : public ::testing::TestWithParam<std::string> {};

TEST_P(KerasReference, OutputMatches) {
  const Json& c = keras_case(GetParam());
  Tensor x = tensor_of_json(c.at("input"));
  Tensor mask = c.has("mask") ? tensor_of_json(c.at("mask")) : Tensor();
  Layer layer = keras_layer(c);
  layer(x);  // builds
  assign_keras_weights(layer, c);
  MaskedTensor out = layer.call_masked(MaskedTensor{x, mask});
  Tensor want = tensor_of_json(c.at("output"));
  ASSERT_EQ(out.value.shape(), want.shape());
  const float diff = max_abs_diff(out.value, want);
  std::printf("%s: max abs diff vs Keras %.3g\n", GetParam().c_str(), diff);
  EXPECT_LE(diff, 2e-6f);
  const bool sequences = c.at("options").has("return_sequences");
  EXPECT_EQ(out.mask.defined(), sequences && mask.defined());
  // The layer's config makes the same layer again.
  Layer back = layer_from_config(layer->class_name(), layer->config());
  EXPECT_EQ(back->config(), layer->config());
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasReference, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(Recurrent, KerasDefaultsAndWeightShapes) {
  Layer lstm = LSTM(6);
  Tensor out = lstm(Tensor::ones({2, 5, 3}));
  EXPECT_EQ(out.shape(), (Shape{2, 6}));
  std::vector<Variable> v = lstm->variables();
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].shape(), (Shape{3, 24}));
  EXPECT_EQ(v[1].shape(), (Shape{6, 24}));
  EXPECT_EQ(v[2].shape(), (Shape{24}));
  // unit_forget_bias: the forget gate's bias starts at 1, the others at 0.
  std::vector<float> b = v[2].value().to_vector();
  for (int k = 0; k < 24; ++k) EXPECT_EQ(b[k], k >= 6 && k < 12 ? 1.f : 0.f) << k;
  // The recurrent kernel is orthogonal (Keras's default): each gate's [6, 6] block has
  // orthonormal columns only jointly, so check the [6, 24] rows: R R^T = I.
  Tensor r = v[1].value();
  std::vector<float> eye = matmul(r, transpose(r)).to_vector();
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j) EXPECT_NEAR(eye[i * 6 + j], i == j ? 1.f : 0.f, 1e-5f);
  EXPECT_EQ(GRU(4)->variables().size(), 0u);  // built on the first call
  Layer gru = GRU(4);
  gru(Tensor::ones({1, 2, 3}));
  EXPECT_EQ(gru->variables()[2].shape(), (Shape{2, 12}));
  EXPECT_EQ(lstm->count_params(), 3 * 24 + 6 * 24 + 24);  // Keras: 4 * (u * (u + i) + u)
}

TEST(Recurrent, RefusedOptionsNameThemselves) {
  auto expect_refused = [](const std::function<void()>& f, const std::string& what) {
    try {
      f();
      FAIL() << "no error for " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_refused([] { LSTM(3, {.stateful = true}); }, "stateful=true is not supported");
  expect_refused([] { GRU(3, {.reset_after = false}); }, "reset_after=false");
  expect_refused([] { SimpleRNN(3, {.activation = "relu"}); }, "activation 'relu'");
  expect_refused([] { LSTM(3, {.recurrent_dropout = 0.5f}); }, "LSTM: recurrent_dropout=0.5");
  expect_refused([] { GRU(3, {.dropout = 1.f}); }, "GRU: dropout must be in [0, 1)");
  expect_refused([] { Bidirectional(LSTM(3), "none"); }, "merge_mode 'none'");
  expect_refused([] { Bidirectional(Dense(3)); }, "wraps LSTM, GRU or SimpleRNN");
  // A mask with a hole cannot run on oneDNN's primitive: the row is named.
  Layer lstm = LSTM(3);
  Tensor mask = Tensor::from_vector({1, 0, 1, 1, 1, 1}, {2, 3});
  expect_refused([&] { lstm.call_masked(MaskedTensor{Tensor::ones({2, 3, 2}), mask}); }, "mask row 0 is not one run");
}

// Embedding(mask_zero) -> LSTM(return_sequences) -> Bidirectional(GRU) -> Dense.
std::shared_ptr<Model> masked_classifier() {
  SymbolicTensor in = Input({7}, DType::s32);
  SymbolicTensor h = Embedding(20, 5, {.mask_zero = true})(in);
  h = LSTM(6, {.return_sequences = true})(h);
  h = Bidirectional(GRU(4), "concat")(h);
  return std::make_shared<Model>(in, Dense(3)(h));
}

// Token ids with trailing zeros, as a tokenizer pads.
Tensor padded_ids(int64_t rows, int64_t steps, uint64_t seed) {
  std::vector<float> r = random_uniform({rows * steps}, 1.f, 20.f, seed).to_vector();
  std::vector<int32_t> ids(rows * steps, 0);
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t length = 1 + (i * 3) % steps;
    for (int64_t t = 0; t < length; ++t) ids[i * steps + t] = static_cast<int32_t>(r[i * steps + t]);
  }
  return Tensor::from_int32(ids, {rows, steps});
}

TEST(RecurrentModel, MaskedModelSavesLoadsTracesAndRunsInferenceModel) {
  set_global_seed(5);
  auto model = masked_classifier();
  Tensor ids = padded_ids(6, 7, 3);
  Tensor want = model->predict(ids);
  // Padding after a sequence changes nothing: the same rows without their padding steps.
  const std::string path = temp_path("recurrent_classifier.kiln");
  save_model(*model, path);
  auto loaded = load_model(path);
  EXPECT_TRUE(bitwise_equal(loaded->predict(ids), want));
  graph::Graph g = graph::trace(*model, padded_ids(2, 7, 4));
  EXPECT_TRUE(bitwise_equal(g.run(ids), want));
  auto inference = runtime_export::trace(*model, padded_ids(2, 7, 4));
  const float diff = max_abs_diff(inference->run(ids), want);
  std::printf("InferenceModel vs predict max abs diff %.3g\n", diff);
  EXPECT_LE(diff, 1e-5f);
  // ONNX has no Keras masks: export says so rather than writing a different model.
  try {
    runtime_export::export_onnx(g, temp_path("masked.onnx"));
    FAIL() << "a masked LSTM was exported";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("masked recurrent layer is not exported"), std::string::npos) << e.what();
  }
}

TEST(RecurrentModel, PaddingAfterASequenceDoesNotChangeItsResult) {
  set_global_seed(6);
  auto model = masked_classifier();
  Tensor ids = padded_ids(4, 7, 8);
  Tensor want = model->predict(ids);
  std::vector<int32_t> v = ids.to_int32();
  for (int64_t i = 0; i < 4; ++i) {  // row i alone, cut to its real length + 1 padding step
    const int64_t length = 1 + (i * 3) % 7;
    std::vector<int32_t> row(v.begin() + i * 7, v.begin() + i * 7 + 7);
    Tensor one = Tensor::from_int32(row, {1, 7});
    Tensor got = model->predict(one);
    EXPECT_LE(max_abs_diff(got, slice(want, 0, i, i + 1)), 1e-6f) << "row " << i << " length " << length;
  }
}

TEST(RecurrentModel, OnnxRoundTripThroughOnnxRuntime) {
  set_global_seed(7);
  SymbolicTensor in = Input({6, 4});
  SymbolicTensor h = LSTM(5, {.return_sequences = true})(in);
  h = Bidirectional(SimpleRNN(3, {.return_sequences = true}), "sum")(h);
  h = GRU(4, {.go_backwards = true})(h);
  auto model = std::make_shared<Model>(in, Dense(2)(h));
  Tensor x = random_uniform({3, 6, 4}, -1.f, 1.f, 9);
  graph::Graph g = graph::trace(*model, random_uniform({2, 6, 4}, -1.f, 1.f, 10));
  EXPECT_LE(max_abs_diff(g.run(x), model->predict(x)), 0.f);
  graph::Graph back = testing::expect_onnx_round_trip(g, {x}, "recurrent_model");
  int cells = 0;
  for (const graph::Node& n : back.nodes) {
    cells += n.call.op() == "lstm" || n.call.op() == "gru" || n.call.op() == "simple_rnn";
  }
  EXPECT_EQ(cells, 4);  // LSTM, two SimpleRNNs, GRU came back as Kiln's cells
}

TEST(RecurrentModel, TrainsAndMixedPrecisionKeepsF32Weights) {
  for (const char* policy : {"float32", "mixed_bfloat16"}) {
    SCOPED_TRACE(policy);
    set_global_seed(8);
    nn::set_global_policy(policy);
    auto model = std::make_shared<Sequential>(std::vector<Layer>{LSTM(8), Dense(2)});
    nn::set_global_policy("float32");
    // The label: whether the sequence's first feature sums above zero.
    Tensor x = random_uniform({64, 5, 3}, -1.f, 1.f, 11);
    std::vector<float> xv = x.to_vector();
    std::vector<int32_t> yv(64);
    for (int i = 0; i < 64; ++i) {
      float s = 0;
      for (int t = 0; t < 5; ++t) s += xv[(i * 5 + t) * 3];
      yv[i] = s > 0 ? 1 : 0;
    }
    model->compile(optim::Adam(0.02f), SparseCategoricalCrossentropy(true));
    data::Dataset ds = data::Dataset::from_tensor_slices(x, Tensor::from_int32(yv, {64})).batch(16);
    History h = model->fit(ds, {.epochs = 15, .verbose = 0});
    std::printf("%s: loss %.4f -> %.4f\n", policy, h.history["loss"].front(), h.history["loss"].back());
    EXPECT_LT(h.history["loss"].back(), 0.6 * h.history["loss"].front());
    for (const Variable& v : model->variables()) EXPECT_EQ(v.value().dtype(), DType::f32) << v.name();
  }
}

}  // namespace
}  // namespace kiln
