// Recurrent layers with several outputs and initial states (nn/layers/recurrent.h,
// bidirectional.h): return_state, initial_state, Bidirectional(merge_mode=None) against Keras
// 3.15.1 on the same weights, and a seq2seq-style model (an encoder LSTM's states start a
// decoder LSTM) trained with SGD to Keras's losses and weights (tests/data/recurrent:
// state_reference.json and its generator). Then the same model through the functional
// config, save/load, trace, Graph::run, InferenceModel and ONNX Runtime; and the input
// dropout's masks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "base/files.h"
#include "base/json.h"
#include "graph/trace.h"
#include "kiln.h"
#include "nn/layer_registry.h"
#include "nn/model_config.h"
#include "runtime_export/inference_model.h"
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
  static const Json ref =
      base::parse_json(base::read_file("tests/data/recurrent/state_reference.json"), "state_reference.json");
  return ref;
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  for (const Json& c : reference().at("layer_cases").items()) names.push_back(c.at("name").as_string());
  return names;
}

const Json& keras_case(const std::string& name) {
  for (const Json& c : reference().at("layer_cases").items()) {
    if (c.at("name").as_string() == name) return c;
  }
  throw std::runtime_error("no case " + name);
}

Layer keras_layer(const Json& c) {
  RecurrentOptions o;
  const Json& opt = c.at("options");
  for (const std::string& key : opt.keys()) {
    const Json& value = opt.at(key);
    if (key == "return_sequences") o.return_sequences = value.as_bool();
    else if (key == "return_state") o.return_state = value.as_bool();
    else if (key == "go_backwards") o.go_backwards = value.as_bool();
    else throw std::runtime_error("option " + key);
  }
  const std::string cls = c.at("class_name").as_string();
  const int64_t units = c.at("units").as_int();
  Layer layer = cls == "LSTM" ? LSTM(units, o) : cls == "GRU" ? GRU(units, o) : SimpleRNN(units, o);
  if (c.has("merge_mode")) {
    const Json& mode = c.at("merge_mode");
    layer = Bidirectional(layer, mode.is_null() ? std::nullopt : std::optional<std::string>(mode.as_string()));
  }
  return layer;
}

void assign_all(const std::vector<Variable>& vars, const Json& weights) {
  ASSERT_EQ(vars.size(), weights.size());
  for (size_t i = 0; i < vars.size(); ++i) {
    Tensor w = tensor_of_json(weights[i]);
    ASSERT_EQ(w.shape(), vars[i].shape()) << vars[i].name();
    vars[i].assign(w);
  }
}

class KerasStateReference : public ::testing::TestWithParam<std::string> {};

TEST_P(KerasStateReference, EveryOutputMatches) {
  const Json& c = keras_case(GetParam());
  std::vector<MaskedTensor> inputs;
  for (const Json& in : c.at("inputs").items()) inputs.push_back({tensor_of_json(in), Tensor()});
  if (c.has("mask")) inputs[0].mask = tensor_of_json(c.at("mask"));
  Layer layer = keras_layer(c);
  const Json& want = c.at("outputs");
  ASSERT_EQ(layer->num_outputs(), static_cast<int>(want.size()));
  layer.outputs({inputs[0].value});  // builds
  assign_all(layer->variables(), c.at("weights"));
  std::vector<MaskedTensor> got = layer.call_masked_outputs(inputs);
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size(); ++k) {
    Tensor w = tensor_of_json(want[k]);
    ASSERT_EQ(got[k].value.shape(), w.shape()) << "output " << k;
    const float diff = max_abs_diff(got[k].value, w);
    std::printf("%s output %zu: max abs diff vs Keras %.3g\n", GetParam().c_str(), k, diff);
    EXPECT_LE(diff, 2e-6f) << "output " << k;
  }
  Layer back = layer_from_config(layer->class_name(), layer->config());
  EXPECT_EQ(back->config(), layer->config());
  EXPECT_EQ(back->num_outputs(), layer->num_outputs());
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasStateReference, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

void expect_error(const std::function<void()>& f, const std::string& what) {
  try {
    f();
    FAIL() << "no error for " << what;
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(RecurrentState, SymbolicOutputsAndTheirErrors) {
  SymbolicTensor in = Input({5, 3});
  Layer lstm = LSTM(4, {.return_state = true}, "enc");
  std::vector<SymbolicTensor> outs = lstm.outputs({in});
  ASSERT_EQ(outs.size(), 3u);
  for (const SymbolicTensor& o : outs) EXPECT_EQ(o.shape(), (Shape{4}));
  EXPECT_EQ(outs[2].output_index(), 2u);
  // One-output calls name the way to get them all.
  expect_error([&] { lstm(in); }, "layer 'enc' (LSTM) has 3 outputs: call it with Layer::outputs()");
  expect_error([&] { lstm(Tensor::ones({2, 5, 3})); }, "has 3 outputs");
  // Initial states: all or none, each [batch, units].
  Layer gru = GRU(4);
  expect_error([&] { gru.outputs({Tensor::ones({2, 5, 3}), Tensor::ones({2, 3})}); }, "initial state 0 must be f32[2, 4]");
  expect_error([&] { LSTM(4).outputs({Tensor::ones({2, 5, 3}), Tensor::ones({2, 4})}); },
               "optionally its 2 initial state(s), got 2 inputs");
  expect_error([&] { Bidirectional(LSTM(2)).outputs({Tensor::ones({2, 5, 3}), Tensor::ones({2, 2})}); },
               "optionally 4 initial states");
}

// The generator's seq2seq model: LSTM(return_state) "encoder" -> (h, c) -> LSTM "decoder"
// reading the same sequence -> Dense "head" on every step.
std::shared_ptr<Model> seq2seq(const Json& r) {
  SymbolicTensor in = Input({r.at("steps").as_int(), r.at("features").as_int()});
  const int64_t units = r.at("units").as_int();
  std::vector<SymbolicTensor> enc = LSTM(units, {.return_state = true}, "encoder").outputs({in});
  SymbolicTensor seq = LSTM(units, {.return_sequences = true}, "decoder")({in, enc[1], enc[2]});
  return std::make_shared<Model>(in, Dense(2, "", {}, "head")(seq), "seq2seq");
}

TEST(RecurrentState, Seq2SeqTrainsAsKeras) {
  const Json& r = reference().at("seq2seq");
  auto model = seq2seq(r);
  assign_all(model->variables(), r.at("weights"));
  Tensor x = tensor_of_json(r.at("x")), y = tensor_of_json(r.at("y"));
  const float before = max_abs_diff(model->predict(x), tensor_of_json(r.at("predict_before")));
  std::printf("seq2seq predict vs Keras before training: max abs diff %.3g\n", before);
  EXPECT_LE(before, 2e-6f);
  model->compile(optim::SGD(0.2f), MeanSquaredError());
  History h = model->fit(data::Dataset::from_tensor_slices(x, y).batch(4), {.epochs = 3, .verbose = 0});
  const Json& keras_loss = r.at("loss");
  ASSERT_EQ(h.history["loss"].size(), keras_loss.size());
  for (size_t e = 0; e < keras_loss.size(); ++e) {
    std::printf("epoch %zu loss %.7f (Keras %.7f)\n", e, h.history["loss"][e], keras_loss[e].as_number());
    EXPECT_NEAR(h.history["loss"][e], keras_loss[e].as_number(), 2e-6);
  }
  const float after = max_abs_diff(model->predict(x), tensor_of_json(r.at("predict_after")));
  std::printf("seq2seq predict vs Keras after 6 SGD steps: max abs diff %.3g\n", after);
  EXPECT_LE(after, 1e-5f);
  std::vector<Variable> vars = model->variables();
  for (size_t i = 0; i < vars.size(); ++i) {
    EXPECT_LE(max_abs_diff(vars[i].value(), tensor_of_json(r.at("weights_after")[i])), 1e-5f) << vars[i].name();
  }
}

TEST(RecurrentState, Seq2SeqConfigSaveLoadTraceAndOnnx) {
  set_global_seed(31);
  const Json& r = reference().at("seq2seq");
  auto model = seq2seq(r);
  Tensor x = tensor_of_json(r.at("x"));
  Tensor want = model->predict(x);
  // Keras's reference to a tensor: [layer, node index, tensor index].
  Config c = model->config();
  const Config& decoder = c.at("layers")[2];
  ASSERT_EQ(decoder.at("name").as_string(), "decoder");
  EXPECT_EQ(decoder.at("inbound_nodes")[0][1], Config::list({"encoder", 0, 1}));
  EXPECT_EQ(decoder.at("inbound_nodes")[0][2], Config::list({"encoder", 0, 2}));
  const std::string path = temp_path("seq2seq.kiln");
  save_model(*model, path);
  auto loaded = load_model(path);
  EXPECT_TRUE(bitwise_equal(loaded->predict(x), want));
  graph::Graph g = graph::trace(*model, slice(x, 0, 0, 2));
  EXPECT_TRUE(bitwise_equal(g.run(x), want));
  auto inference = runtime_export::trace(*model, slice(x, 0, 0, 2));
  EXPECT_LE(max_abs_diff(inference->run(x), want), 1e-6f);
  graph::Graph back = testing::expect_onnx_round_trip(g, {x}, "seq2seq");
  int initialised = 0;
  for (const graph::Node& n : back.nodes) initialised += n.call.op() == "lstm" && n.inputs.size() == 6;
  EXPECT_EQ(initialised, 1);  // the decoder came back with its initial states
}

// A model whose outputs are the states themselves, and a Bidirectional(merge_mode=None).
TEST(RecurrentState, StateOutputsAndBothDirectionsAsModelOutputs) {
  set_global_seed(32);
  SymbolicTensor in = Input({6, 3});
  std::vector<SymbolicTensor> gru = GRU(4, {.return_sequences = true, .return_state = true}, "gru").outputs({in});
  std::vector<SymbolicTensor> both =
      Bidirectional(SimpleRNN(2, {.return_sequences = true}), std::nullopt, std::nullopt, "bi").outputs({gru[0]});
  ASSERT_EQ(both.size(), 2u);
  auto model = std::make_shared<Model>(std::vector<SymbolicTensor>{in},
                                       std::vector<SymbolicTensor>{gru[1], both[0], both[1]}, "states");
  Tensor x = random_uniform({3, 6, 3}, -1.f, 1.f, 33);
  std::vector<Tensor> want = model->call({x}, false);
  ASSERT_EQ(want.size(), 3u);
  EXPECT_EQ(want[0].shape(), (Shape{3, 4}));
  EXPECT_EQ(want[1].shape(), (Shape{3, 6, 2}));
  Config c = model->config();
  EXPECT_EQ(c.at("output_layers")[0], Config::list({"gru", 0, 1}));
  EXPECT_EQ(c.at("output_layers")[2], Config::list({"bi", 0, 1}));
  EXPECT_TRUE(c.at("layers")[2].at("config").at("merge_mode").is_null());
  const std::string path = temp_path("states.kiln");
  save_model(*model, path);
  std::vector<Tensor> loaded = load_model(path)->call({x}, false);
  graph::Graph g = graph::trace(*model, slice(x, 0, 0, 2));
  std::vector<Tensor> run = g.run(std::vector<Tensor>{x});
  ASSERT_EQ(run.size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_TRUE(bitwise_equal(loaded[k], want[k])) << k;
    EXPECT_TRUE(bitwise_equal(run[k], want[k])) << k;
  }
  testing::expect_onnx_round_trip(g, {x}, "states");
  // merge_mode null is None (two outputs); absent is Keras's default, concat.
  Config bi = Bidirectional(GRU(2), std::nullopt)->config(), without = Config::map();
  EXPECT_EQ(layer_from_config("Bidirectional", bi)->num_outputs(), 2);
  for (const std::string& key : bi.keys()) {
    if (key != "merge_mode") without.set(key, bi.at(key));
  }
  Layer concat = layer_from_config("Bidirectional", without);
  EXPECT_EQ(concat->num_outputs(), 1);
  EXPECT_EQ(concat->config().at("merge_mode").as_string(), "concat");
  // A config's tensor index past the layer's outputs is refused, naming it.
  Config bad = c;
  Config outs = Config::list({Config::list({"gru", 0, 2})});
  bad.set("output_layers", outs);
  expect_error([&] { model_from_config("Functional", bad); }, "refers to tensor 2 of layer 'gru', which has 2 output(s)");
}

// Keras's input dropout: one [batch, features] mask per call, the same at every step, kept
// with probability 1 - rate and scaled by 1 / (1 - rate); nothing at inference.
TEST(RecurrentDropout, OneMaskPerSequenceScaledAndOnlyInTraining) {
  set_global_seed(34);
  const float rate = 0.4f;
  // SimpleRNN with an identity kernel, zero recurrence and no bias: h_t = tanh(dropped x_t),
  // so each step's output shows the mask that step used.
  Layer rnn = SimpleRNN(64, {.use_bias = false, .dropout = rate, .return_sequences = true});
  const int64_t batch = 32, steps = 5, features = 64;
  Tensor x = Tensor::ones({batch, steps, features}) * 0.5f;
  rnn(x);
  std::vector<float> eye(features * features, 0.f);
  for (int64_t i = 0; i < features; ++i) eye[i * features + i] = 1.f;
  rnn->variables()[0].assign(Tensor::from_vector(eye, {features, features}));
  rnn->variables()[1].assign(Tensor::zeros({features, features}));
  EXPECT_TRUE(bitwise_equal(rnn(x, false), tanh(x)));  // inference: no dropout
  const float kept = std::tanh(0.5f / (1.f - rate));
  int64_t dropped = 0;
  std::vector<float> y = rnn(x, true).to_vector();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t f = 0; f < features; ++f) {
      const float first = y[(b * steps) * features + f];
      ASSERT_TRUE(first == 0.f || std::fabs(first - kept) < 1e-6f) << first;
      dropped += first == 0.f;
      for (int64_t t = 1; t < steps; ++t) ASSERT_EQ(y[(b * steps + t) * features + f], first) << "step " << t;
    }
  }
  const double fraction = static_cast<double>(dropped) / (batch * features);
  std::printf("dropped %.4f of %lld (rate %.2f)\n", fraction, static_cast<long long>(batch * features), rate);
  EXPECT_NEAR(fraction, rate, 0.05);  // 2048 draws: 5 standard deviations
  EXPECT_FALSE(bitwise_equal(rnn(x, true), rnn(x, true)));  // a fresh mask each call
  // The resolved seed is in the config, so a loaded layer draws the same masks.
  Config c = rnn->config();
  EXPECT_EQ(c.at("dropout").as_number(), static_cast<double>(rate));
  EXPECT_TRUE(c.at("seed").kind() == Config::Kind::integer);
}

TEST(RecurrentDropout, TrainsAndGradientsSkipDroppedFeatures) {
  set_global_seed(35);
  auto model = std::make_shared<Sequential>(
      std::vector<Layer>{Bidirectional(LSTM(6, {.dropout = 0.3f})), Dense(1)});
  Tensor x = random_uniform({32, 5, 3}, -1.f, 1.f, 36);
  std::vector<float> xv = x.to_vector(), yv(32);
  for (int i = 0; i < 32; ++i) yv[i] = xv[i * 15] + xv[i * 15 + 3];
  model->compile(optim::Adam(0.02f), MeanSquaredError());
  History h = model->fit(data::Dataset::from_tensor_slices(x, Tensor::from_vector(yv, {32, 1})).batch(8),
                         {.epochs = 20, .verbose = 0});
  std::printf("Bidirectional(LSTM(dropout=0.3)) loss %.4f -> %.4f\n", h.history["loss"].front(), h.history["loss"].back());
  EXPECT_LT(h.history["loss"].back(), 0.5 * h.history["loss"].front());
  // Traced for inference: no dropout, the same numbers as predict.
  graph::Graph g = graph::trace(*model, slice(x, 0, 0, 2));
  EXPECT_TRUE(bitwise_equal(g.run(x), model->predict(x)));
}

}  // namespace
}  // namespace kiln
