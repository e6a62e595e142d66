// MultiHeadAttention against Keras 3.15.1 (tests/data/multi_head_attention: reference.json and
// make_reference.py, its generator), and through Kiln's paths: masks from the mask API,
// gradients, config and save/load, trace, Graph::run, InferenceModel, ONNX Runtime and int8.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "autograd/gradient_tape.h"
#include "base/files.h"
#include "base/json.h"
#include "data/dataset.h"
#include "graph/trace.h"
#include "nn/layer_registry.h"
#include "nn/layers/layers.h"
#include "nn/model.h"
#include "nn/model_io.h"
#include "nn/symbolic.h"
#include "quant/quantize.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_export.h"
#include "tensor/ops/ops.h"
#include "tests/json_tensor.h"
#include "tests/gradcheck.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"

namespace kiln {
namespace {

using testing::tensor_of_json;

using base::Json;
using testing::rand_tensor;

void expect_close(const Tensor& a, const Tensor& b, double atol, double rtol, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  std::vector<float> x = a.to_vector(), y = b.to_vector();
  int bad = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(std::fabs(x[i] - y[i]) <= atol + rtol * std::fabs(y[i])) && ++bad <= 5) {
      ADD_FAILURE() << what << " [" << i << "]: " << x[i] << " vs " << y[i];
    }
  }
}

const Json& reference() {
  static const Json ref =
      base::parse_json(base::read_file("tests/data/multi_head_attention/reference.json"), "reference.json");
  return ref;
}

const Json& keras_case(const std::string& name) {
  for (const Json& c : reference().at("cases").items()) {
    if (c.at("name").as_string() == name) return c;
  }
  throw std::runtime_error("no case " + name);
}

// The layer Keras's config describes, built and holding Keras's weights (matched by their
// variable path after the layer's name).
nn::Layer keras_layer(const Json& c, const Tensor& query, const Tensor& value) {
  const Json& cfg = c.at("config");
  nn::MultiHeadAttentionOptions o;
  o.value_dim = cfg.at("value_dim").as_int();
  o.use_bias = cfg.at("use_bias").as_bool();
  if (!cfg.at("output_shape").is_null()) {
    for (const Json& d : cfg.at("output_shape").items()) o.output_shape.push_back(d.as_int());
  }
  nn::Layer layer = nn::MultiHeadAttention(cfg.at("num_heads").as_int(), cfg.at("key_dim").as_int(), o);
  layer({query, value});  // builds
  const Json& weights = c.at("weights");
  EXPECT_EQ(layer->variables().size(), weights.size());
  for (const Variable& v : layer->variables()) {
    std::string path = v.name().substr(v.name().find('/') + 1);
    bool found = false;
    for (size_t i = 0; i < weights.keys().size(); ++i) {
      const std::string& k = weights.keys()[i];
      if (k.substr(k.find('/') + 1) != path) continue;
      Tensor w = tensor_of_json(weights.items()[i]);
      EXPECT_EQ(w.shape(), v.shape()) << path;  // Keras's layout
      v.assign(w);
      found = true;
    }
    EXPECT_TRUE(found) << "Keras has no variable " << path;
  }
  return layer;
}

class KerasReference : public ::testing::TestWithParam<std::string> {};

TEST_P(KerasReference, OutputAndScoresMatch) {
  const Json& c = keras_case(GetParam());
  Tensor query = tensor_of_json(c.at("query")), value = tensor_of_json(c.at("value"));
  nn::Layer layer = keras_layer(c, query, value);
  nn::MultiHeadAttentionCall call{.query = query, .value = value};
  if (c.has("attention_mask")) call.attention_mask = tensor_of_json(c.at("attention_mask"));
  if (c.has("query_mask")) {
    call.query_mask = tensor_of_json(c.at("query_mask"));
    call.value_mask = tensor_of_json(c.at("value_mask"));
  }
  call.use_causal_mask = c.has("use_causal_mask");
  Tensor expected = tensor_of_json(c.at("output"));
  nn::MultiHeadAttentionResult fused = nn::multi_head_attention(layer, call);
  expect_close(fused.output, expected, 2e-5, 1e-4, "output");
  call.return_attention_scores = true;
  nn::MultiHeadAttentionResult with_scores = nn::multi_head_attention(layer, call);
  expect_close(with_scores.output, expected, 2e-5, 1e-4, "output with scores");
  expect_close(with_scores.scores, tensor_of_json(c.at("scores")), 2e-6, 1e-4, "scores");
  // Keras's other path (ops.dot_product_attention) agrees wherever a query has a key left.
  if (c.has("output_fused") && !c.has("attention_mask") && !c.has("query_mask")) {
    expect_close(fused.output, tensor_of_json(c.at("output_fused")), 2e-5, 1e-4, "Keras's fused path");
  }
}

INSTANTIATE_TEST_SUITE_P(MultiHeadAttention, KerasReference,
                         ::testing::Values("cross", "masked", "causal_self", "output_shape_no_bias", "sequence_masks",
                                           "rank4"));

// Kiln writes every key Keras's get_config writes (Kiln's own forms for dtype and
// initializers), and reads its own config back to the same layer.
TEST(MultiHeadAttention, ConfigHasKerasKeysAndRoundTrips) {
  const Json& keras_config = keras_case("output_shape_no_bias").at("config");
  nn::Layer layer = nn::MultiHeadAttention(2, 3, {.value_dim = 4, .dropout = 0.25f, .use_bias = false, .output_shape = {2, 3}});
  nn::Config c = layer->config();
  for (const std::string& k : keras_config.keys()) EXPECT_TRUE(c.has(k)) << "config lacks Keras's key " << k;
  nn::Layer back = nn::layer_from_config("MultiHeadAttention", c);
  EXPECT_EQ(back->config(), c);
  EXPECT_THROW(nn::MultiHeadAttention(0, 3), std::invalid_argument);
  nn::Config gated = c;
  gated.set("use_gate", true);
  EXPECT_THROW(nn::layer_from_config("MultiHeadAttention", gated), std::invalid_argument);
}

// Masks from the mask API: the query's mask masks rows and passes on, the value's masks keys,
// as attention_mask = query_mask[:, :, None] & value_mask[:, None, :] would.
TEST(MultiHeadAttention, InputMasksCombineAsKerasDoes) {
  Tensor q = rand_tensor({2, 4, 6}, 1), v = rand_tensor({2, 5, 6}, 2);
  Tensor qm = Tensor::from_vector({1, 1, 1, 0, 1, 1, 0, 0}, {2, 4});
  Tensor vm = Tensor::from_vector({1, 1, 1, 1, 0, 1, 0, 1, 1, 1}, {2, 5});
  nn::Layer layer = nn::MultiHeadAttention(2, 3);
  nn::MaskedTensor out = layer.call_masked(std::vector<nn::MaskedTensor>{{q, qm}, {v, vm}});
  EXPECT_EQ(out.mask.to_vector(), qm.to_vector());
  Tensor explicit_mask = reshape(qm, {2, 4, 1}) * reshape(vm, {2, 1, 5});
  Tensor y = layer({q, v, v, explicit_mask});
  expect_close(out.value, y, 0, 0, "masks vs attention_mask");
}

TEST(MultiHeadAttention, GradientsMatchFiniteDifferences) {
  Tensor q = rand_tensor({2, 3, 4}, 1), v = rand_tensor({2, 5, 4}, 2);
  Tensor mask = greater(rand_tensor({2, 3, 5}, 3), Tensor::scalar(-0.5f));
  nn::Layer layer = nn::MultiHeadAttention(2, 3, {.value_dim = 2});
  layer({q, v, v, mask});
  Tensor r = rand_tensor({2, 3, 4}, 4);
  auto loss = [&](const Tensor& query) { return reduce_sum(layer({query, v, v, mask}) * r, {}); };
  for (const Variable& w : layer->variables()) {
    GradientTape tape;
    Tensor g = tape.gradient(loss(q), w.value());
    ASSERT_TRUE(g.defined()) << w.name();
    Tensor saved = w.value().clone_detached();
    std::vector<float> gv = g.to_vector();
    for (int64_t i = 0; i < w.value().numel(); i += 7) {
      std::vector<float> plus = saved.to_vector(), minus = plus;
      plus[i] += 1e-2f;
      minus[i] -= 1e-2f;
      w.assign(Tensor::from_vector(plus, saved.shape()));
      double lp = loss(q).item();
      w.assign(Tensor::from_vector(minus, saved.shape()));
      double lm = loss(q).item();
      w.assign(saved);
      EXPECT_NEAR(gv[i], (lp - lm) / 2e-2, 2e-3) << w.name() << " [" << i << "]";
    }
  }
}

TEST(MultiHeadAttention, DropoutOnlyInTraining) {
  Tensor q = rand_tensor({2, 6, 8}, 1);
  nn::Layer layer = nn::MultiHeadAttention(2, 4, {.dropout = 0.5f, .seed = 3});
  Tensor a = layer({q, q}), b = layer({q, q});
  expect_close(a, b, 0, 0, "inference");
  Tensor t = layer({q, q}, true);
  EXPECT_NE(t.to_vector(), a.to_vector());
}

// A self-attention classifier through every path Kiln has.
std::shared_ptr<nn::Model> small_transformer(bool causal) {
  nn::SymbolicTensor x = nn::Input({6, 8});
  nn::SymbolicTensor h = nn::MultiHeadAttention(2, 4, {.use_causal_mask = causal})({x, x});
  h = nn::Dense(4)(nn::Flatten()(h));
  return std::make_shared<nn::Model>(x, h);
}

TEST(MultiHeadAttention, SaveLoadTraceInferenceModelAndOnnx) {
  for (bool causal : {false, true}) {
    SCOPED_TRACE(causal ? "causal" : "plain");
    auto model = small_transformer(causal);
    Tensor x = rand_tensor({3, 6, 8}, 5);
    Tensor y = (*model)(x);
    std::string path = testing::temp_path("mha.kiln");
    nn::save_model(*model, path);
    auto loaded = nn::load_model(path);
    expect_close((*loaded)(x), y, 0, 0, "save/load");
    graph::Graph g = graph::trace(*model, x);
    int attention = 0;
    for (const auto& n : g.nodes) attention += n.call.op() == "scaled_dot_product_attention";
    EXPECT_EQ(attention, 1);
    expect_close(g.run(x), y, 0, 0, "Graph::run");
    runtime_export::InferenceModel im(g);
    expect_close(im.run(x), y, 1e-5, 1e-5, "InferenceModel");
    std::string onnx_path = testing::temp_path("mha.onnx");
    runtime_export::export_onnx(g, onnx_path);
    testing::onnx_checker(onnx_path);
    auto ort = testing::run_onnx_runtime(onnx_path, {x});
    ASSERT_TRUE(ort.has_value());
    expect_close((*ort)[0], y, 1e-5, 1e-4, "ONNX Runtime");
  }
}

// int8: the four projections (and the Dense head) become qlinear, attention stays float.
TEST(MultiHeadAttention, QuantizesTheDenseParts) {
  auto model = small_transformer(false);
  Tensor x = rand_tensor({32, 6, 8}, 6);
  Tensor y = (*model)(x);
  quant::QuantizeOptions o;
  o.verbose = false;
  auto q = quant::quantize(*model, data::Dataset::from_tensor_slices(x).batch(8), o);
  Tensor yq = q->run(x);
  double err = 0, scale = 0;
  std::vector<float> a = yq.to_vector(), b = y.to_vector();
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  EXPECT_LT(err, 0.1 * scale);
  int qlinear = 0, attention = 0;
  for (const auto& n : q->inference_graph().nodes) {
    qlinear += n.call.op() == "qlinear";
    attention += n.call.op() == "scaled_dot_product_attention";
  }
  EXPECT_GE(qlinear, 4);
  EXPECT_EQ(attention, 1);
}

}  // namespace
}  // namespace kiln
