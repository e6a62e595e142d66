// Embedding, LayerNormalization, Masking and the 1-D global poolings, and the masks that flow
// between them (nn/mask.h): values against plain loops, gradients, configs, save/load, trace,
// Graph::run, InferenceModel and an ONNX round trip through ONNX Runtime.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "graph/trace.h"
#include "kiln.h"
#include "nn/layer_registry.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tests/gradcheck.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using testing::bitwise_equal;

using namespace kiln::nn;
using testing::temp_path;

using kiln::testing::max_abs_diff;

// Token ids [rows, steps] with trailing zeros (padding) of different lengths per row.
Tensor padded_ids(int64_t rows, int64_t steps, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> ids(rows * steps, 0);
  Tensor r = random_uniform({rows * steps}, 1.f, static_cast<float>(vocab), seed);
  std::vector<float> v = r.to_vector();
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t length = 1 + (i * 3) % steps;  // at least one real token
    for (int64_t t = 0; t < length; ++t) ids[i * steps + t] = static_cast<int32_t>(v[i * steps + t]);
  }
  return Tensor::from_int32(ids, {rows, steps});
}

// --- gather ---------------------------------------------------------------------------------

TEST(Gather, OutOfRangeIndexNamesTheIndexAndTheBound) {
  Tensor table = Tensor::zeros({5, 3});
  try {
    gather(table, Tensor::from_int32({1, 5, 2}, {3}));
    FAIL() << "no error";
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("index 5 at position 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[0, 5)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gather(table, Tensor::from_int32({-1}, {1})), std::out_of_range);
  EXPECT_THROW(gather(table, Tensor::zeros({2})), std::invalid_argument);
  EXPECT_THROW(gather(table, Tensor::from_int32({0}, {1}), 2), std::invalid_argument);
}

// The scatter-add equals the dense gradient one_hot(ids)^T @ grad, repeated ids included.
TEST(Gather, GradientIsTheScatterAddOfRepeatedRows) {
  for (DType dtype : {DType::f32, DType::bf16}) {
    Variable table(cast(testing::rand_tensor({6, 4}, 1), dtype), "table");
    Tensor ids = Tensor::from_int32({2, 0, 2, 5, 2, 0}, {2, 3});
    Tensor weights = testing::rand_tensor({2, 3, 4}, 2);
    GradientTape tape;
    Tensor loss = reduce_sum(cast(gather(table.value(), ids), DType::f32) * weights);
    Tensor grad = tape.gradient(loss, std::vector<Variable>{table})[0];
    ASSERT_EQ(grad.dtype(), dtype);
    // one_hot gives [6 tokens, 6 rows]; the table's gradient is its transpose times the weights.
    Tensor expected = matmul(permute(one_hot(reshape(ids, {6}), 6), {1, 0}), reshape(weights, {6, 4}));
    EXPECT_LE(max_abs_diff(grad, expected), dtype == DType::f32 ? 1e-6f : 2e-2f) << dtype_name(dtype);
  }
}

// --- layer_norm ---------------------------------------------------------------------------

TEST(LayerNorm, MatchesKerasFormulaAndGradients) {
  auto ref = [](const std::vector<ref::RefTensor>& x) {
    const ref::RefTensor& v = x[0];
    const int64_t c = v.shape.back(), rows = v.size() / c;
    ref::RefTensor out{v.shape, std::vector<double>(v.size())};
    for (int64_t r = 0; r < rows; ++r) {
      double mean = 0, var = 0;
      for (int64_t k = 0; k < c; ++k) mean += v.data[r * c + k] / c;
      for (int64_t k = 0; k < c; ++k) var += (v.data[r * c + k] - mean) * (v.data[r * c + k] - mean) / c;
      for (int64_t k = 0; k < c; ++k) out.data[r * c + k] = (v.data[r * c + k] - mean) / std::sqrt(var + 1e-3) * x[1].data[k] + x[2].data[k];
    }
    return out;
  };
  auto f = [](const std::vector<Tensor>& x) { return layer_norm(x[0], x[1], x[2], 1e-3f); };
  std::vector<Tensor> in{testing::rand_tensor({3, 4, 16}, 3, -2.f, 2.f), testing::rand_tensor({16}, 4, 0.5f, 1.5f),
                         testing::rand_tensor({16}, 5)};
  testing::expect_forward_matches(f, ref, in, {1e-5, 1e-4});
  testing::expect_gradients_match(f, ref, in, {2e-3, 2e-3});
  // bf16 input (gamma and beta stay f32): oneDNN 2.6 runs bf16 layer normalization itself.
  Tensor y16 = layer_norm(cast(in[0], DType::bf16), in[1], in[2], 1e-3f);
  EXPECT_EQ(y16.dtype(), DType::bf16);
  EXPECT_LE(max_abs_diff(y16, f(in)), 5e-2f);
  EXPECT_THROW(layer_norm(in[0], Tensor::ones({15}), in[2]), std::invalid_argument);
}

// --- layers and masks --------------------------------------------------------------------

TEST(Embedding, KerasDefaultsWeightLayoutAndMask) {
  set_global_seed(7);
  Layer emb = Embedding(10, 4, {.mask_zero = true});
  Tensor ids = Tensor::from_int32({3, 0, 9, 0}, {2, 2});
  MaskedTensor out = emb.call_masked(MaskedTensor{ids, Tensor()});
  ASSERT_EQ(emb->variables().size(), 1u);
  const Tensor table = emb->variables()[0].value();
  EXPECT_EQ(emb->variables()[0].name(), emb->name() + "/embeddings");
  EXPECT_EQ(table.shape(), (Shape{10, 4}));
  for (float v : table.to_vector()) EXPECT_LE(std::fabs(v), 0.05f);  // Keras's "uniform"
  EXPECT_EQ(out.value.shape(), (Shape{2, 2, 4}));
  EXPECT_TRUE(bitwise_equal(reshape(slice(out.value, 1, 0, 1, 1), {2, 4}), gather(table, Tensor::from_int32({3, 9}, {2}))));
  EXPECT_EQ(out.mask.to_vector(), (std::vector<float>{1, 0, 1, 0}));
  EXPECT_EQ(emb->config().at("embeddings_initializer").as_string(), "uniform");
  EXPECT_THROW(emb(Tensor::from_int32({10}, {1, 1})), std::out_of_range);
  // Without mask_zero no mask comes out.
  EXPECT_FALSE(Embedding(10, 4).call_masked(MaskedTensor{ids, Tensor()}).mask.defined());
}

// Embedding(mask_zero) -> Dense (passes the mask) -> GlobalAveragePooling1D (masked mean):
// the functional model, the Sequential one and the eager calls agree with the loop.
TEST(Masks, FlowFromEmbeddingThroughDenseIntoMaskedMean) {
  set_global_seed(8);
  Layer emb = Embedding(20, 6, {.mask_zero = true}), dense = Dense(5), pool = GlobalAveragePooling1D();
  SymbolicTensor in = Input({7}, DType::s32);
  SymbolicTensor e = emb(in);
  EXPECT_TRUE(e.has_mask());
  SymbolicTensor d = dense(e);
  EXPECT_TRUE(d.has_mask());
  SymbolicTensor p = pool(d);
  EXPECT_FALSE(p.has_mask());
  auto model = std::make_shared<Model>(in, p);
  Tensor ids = padded_ids(4, 7, 20, 9);
  Tensor y = (*model)(ids);
  // The loop: the mean of Dense(Embedding(ids)) over the non-zero ids of each row.
  Tensor h = dense(emb(ids));
  std::vector<float> hv = h.to_vector(), want;
  std::vector<int32_t> iv = ids.to_int32();
  for (int64_t r = 0; r < 4; ++r) {
    for (int64_t k = 0; k < 5; ++k) {
      double s = 0, n = 0;
      for (int64_t t = 0; t < 7; ++t) {
        if (iv[r * 7 + t] != 0) s += hv[(r * 7 + t) * 5 + k], n += 1;
      }
      want.push_back(static_cast<float>(s / n));
    }
  }
  std::vector<float> got = y.to_vector();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5f) << i;
  // The unmasked mean differs (rows have padding): the mask was used.
  EXPECT_GT(max_abs_diff(reduce_mean(h, {1}), y), 1e-4f);
  Sequential seq({emb, dense, pool});
  EXPECT_TRUE(bitwise_equal(seq(ids), y));
  // A nested model passes its output's mask on.
  SymbolicTensor in2 = Input({7}, DType::s32);
  auto inner = std::make_shared<Model>(in2, dense(emb(in2)));
  SymbolicTensor in3 = Input({7}, DType::s32);
  SymbolicTensor nested = (*inner)(in3);
  EXPECT_TRUE(nested.has_mask());
  auto outer = std::make_shared<Model>(in3, pool(nested));
  EXPECT_TRUE(bitwise_equal((*outer)(ids), y));
  // A layer that neither supports nor makes masks drops them (Keras does the same).
  EXPECT_FALSE(Flatten()(e).has_mask());
}

TEST(Masks, MaskingZeroesPaddedStepsAndMasksThem) {
  Layer masking = Masking(0.f);
  std::vector<float> v = {1, 2, 0, 0, 3, 0, /* row 2 */ 0, 0, 0, 0, 5, 6};
  Tensor x = Tensor::from_vector(v, {2, 3, 2});
  MaskedTensor out = masking.call_masked(MaskedTensor{x, Tensor()});
  EXPECT_EQ(out.mask.to_vector(), (std::vector<float>{1, 0, 1, 0, 0, 1}));
  EXPECT_TRUE(bitwise_equal(out.value, x));  // padded steps are already all mask_value here
  Layer masking2 = Masking(2.f);
  MaskedTensor out2 = masking2.call_masked(MaskedTensor{Tensor::full({1, 2, 2}, 2.f), Tensor()});
  EXPECT_EQ(out2.mask.to_vector(), (std::vector<float>{0, 0}));
  EXPECT_EQ(out2.value.to_vector(), (std::vector<float>{0, 0, 0, 0}));  // zeroed, as Keras does
  // GlobalMaxPooling1D ignores masks, as Keras 3's does.
  Tensor gmp = GlobalMaxPooling1D().call_masked(out).value;
  EXPECT_TRUE(bitwise_equal(gmp, reduce_max(x, {1})));
  Tensor gap = GlobalAveragePooling1D(true).call_masked(out).value;
  EXPECT_EQ(gap.shape(), (Shape{2, 1, 2}));
  EXPECT_EQ(gap.to_vector(), (std::vector<float>{2, 1, 5, 6}));  // (1,2) and (3,0); (5,6)
  EXPECT_THROW(GlobalAveragePooling1D().call_masked(MaskedTensor{x, Tensor::ones({2, 2})}), std::invalid_argument);
}

TEST(LayerNormalization, KerasWeightsDefaultsAndMasks) {
  Layer ln = LayerNormalization();
  Tensor x = testing::rand_tensor({2, 3, 8}, 11, -3.f, 3.f);
  Tensor y = ln(x);
  ASSERT_EQ(ln->variables().size(), 2u);
  EXPECT_EQ(ln->variables()[0].name(), ln->name() + "/gamma");
  EXPECT_EQ(ln->variables()[1].name(), ln->name() + "/beta");
  EXPECT_TRUE(bitwise_equal(y, layer_norm(x, Tensor::ones({8}), Tensor::zeros({8}), 1e-3f)));
  EXPECT_DOUBLE_EQ(ln->config().at("epsilon").as_number(), 1e-3f);
  EXPECT_EQ(LayerNormalization({.center = false, .scale = false})->count_params(), 0);
  Layer bare = LayerNormalization({.center = false});
  bare(x);
  EXPECT_EQ(bare->count_params(), 8);
  Tensor mask = Tensor::ones({2, 3});
  EXPECT_TRUE(bitwise_equal(ln.call_masked(MaskedTensor{x, mask}).mask, mask));
}

// A text classifier: every path a model takes, with masks inside.
std::shared_ptr<Model> classifier() {
  SymbolicTensor in = Input({9}, DType::s32);
  SymbolicTensor h = Embedding(30, 8, {.mask_zero = true})(in);
  h = LayerNormalization({.epsilon = 1e-5f})(h);
  h = Dense(8, "relu")(h);
  SymbolicTensor avg = GlobalAveragePooling1D()(h);
  return std::make_shared<Model>(in, Dense(3)(avg));
}

TEST(SequenceModel, ConfigSaveLoadTraceInferenceAndOnnx) {
  set_global_seed(12);
  auto model = classifier();
  Tensor ids = padded_ids(5, 9, 30, 13);
  Tensor want = model->predict(ids);
  // Save/load: the same outputs bit for bit.
  const std::string path = temp_path("sequence_classifier.kiln");
  save_model(*model, path);
  auto loaded = load_model(path);
  EXPECT_TRUE(bitwise_equal(loaded->predict(ids), want));
  // Configs round trip (GlobalMaxPooling1D and Masking too).
  for (Layer l : {GlobalMaxPooling1D(true), Masking(0.5f), GlobalAveragePooling1D()}) {
    Layer back = layer_from_config(l->class_name(), l->config());
    EXPECT_EQ(back->config(), l->config());
  }
  // Trace and Graph::run.
  graph::Graph g = graph::trace(*model, padded_ids(2, 9, 30, 14));
  EXPECT_TRUE(bitwise_equal(g.run(ids), want));
  // InferenceModel (the layer norm runs as a oneDNN primitive there).
  auto inference = runtime_export::trace(*model, padded_ids(2, 9, 30, 14));
  float diff = max_abs_diff(inference->run(ids), want);
  std::printf("InferenceModel vs predict max abs diff %.3g\n", diff);
  EXPECT_LE(diff, 1e-5f);
  // ONNX: Gather and opset 17's LayerNormalization, run by ONNX Runtime, imported back.
  const std::string onnx = temp_path("sequence_classifier.onnx");
  runtime_export::export_onnx(g, onnx);
  testing::onnx_checker(onnx);
  if (auto ort = testing::run_onnx_runtime(onnx, {ids})) {
    float d = max_abs_diff((*ort)[0], want);
    std::printf("ONNX Runtime vs Kiln max abs diff %.3g\n", d);
    EXPECT_LE(d, 1e-4f);
  }
  graph::Graph back = runtime_export::import_onnx(onnx);
  float d2 = max_abs_diff(back.run(ids), want);
  std::printf("imported graph vs Kiln max abs diff %.3g\n", d2);
  EXPECT_LE(d2, 1e-5f);
}

TEST(SequenceModel, TrainsWithMasksAndOnlyUsedRowsGetGradient) {
  set_global_seed(15);
  auto model = classifier();
  Tensor ids = padded_ids(6, 9, 30, 16);
  GradientTape tape;
  Tensor logits = (*model)(ids, true);
  Tensor loss = sparse_softmax_cross_entropy(logits, Tensor::from_int32({0, 1, 2, 0, 1, 2}, {6}));
  std::vector<Variable> vars = model->trainable_variables();
  std::vector<Tensor> grads = tape.gradient(loss, vars);
  ASSERT_EQ(vars[0].shape(), (Shape{30, 8}));
  std::vector<int32_t> iv = ids.to_int32();
  std::vector<float> g = grads[0].to_vector();
  for (int64_t row = 0; row < 30; ++row) {
    bool used = false;
    for (int32_t i : iv) used = used || (i == row && row != 0);
    double norm = 0;
    for (int64_t k = 0; k < 8; ++k) norm += std::fabs(g[row * 8 + k]);
    // Row 0 is padding: masked out of the mean, so its gradient is zero too.
    if (!used) EXPECT_EQ(norm, 0.0) << "row " << row;
  }
  model->compile(optim::Adam(0.01f), SparseCategoricalCrossentropy(true));
  data::Dataset ds = data::Dataset::from_tensor_slices(ids, Tensor::from_int32({0, 1, 2, 0, 1, 2}, {6})).batch(6);
  History h = model->fit(ds, {.epochs = 30, .verbose = 0});
  EXPECT_LT(h.history["loss"].back(), 0.5 * h.history["loss"].front());
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// Under mixed_bfloat16 the table and LayerNormalization's parameters stay f32 (Keras's
// variables), rows are gathered in f32 and cast, and training runs.
TEST(SequenceModel, MixedPrecisionKeepsF32Weights) {
  set_global_seed(17);
  nn::set_global_policy("mixed_bfloat16");
  auto model = classifier();
  nn::set_global_policy("float32");
  Tensor ids = padded_ids(6, 9, 30, 18);
  Tensor y = model->predict(ids);
  EXPECT_EQ(y.shape(), (Shape{6, 3}));
  for (const Variable& v : model->variables()) EXPECT_EQ(v.value().dtype(), DType::f32) << v.name();
  model->compile(optim::Adam(0.01f), nn::SparseCategoricalCrossentropy(true));
  data::Dataset ds = data::Dataset::from_tensor_slices(ids, Tensor::from_int32({0, 1, 2, 0, 1, 2}, {6})).batch(6);
  nn::History h = model->fit(ds, {.epochs = 20, .verbose = 0});
  EXPECT_LT(h.history["loss"].back(), h.history["loss"].front());
}

}  // namespace
}  // namespace kiln
