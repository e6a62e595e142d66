// The vision transformer's pieces (issue 22): AddPositionEmbedding (values, gradient, config,
// errors, masks), and a small ViT (nn/applications/vision_transformer.h) through every path:
// save/load, trace, Graph::run, InferenceModel f32 and bf16, ONNX Runtime, and int8, where
// the Dense and projection matmuls become qlinear while LayerNorm and attention's softmax
// stay f32.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "autograd/gradient_tape.h"
#include "graph/trace.h"
#include "kiln.h"
#include "nn/applications/vision_transformer.h"
#include "nn/layer_registry.h"
#include "quant/quantize.h"
#include "runtime_export/inference_model.h"
#include "tests/gradcheck.h"
#include "tests/onnx_round_trip.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using testing::bitwise_equal;

using namespace kiln::nn;
using testing::max_abs_diff;
using testing::rand_tensor;

TEST(AddPositionEmbedding, AddsTheFirstRowsOfItsWeight) {
  set_global_seed(1);
  Layer pos = AddPositionEmbedding(5);
  Tensor x = rand_tensor({3, 5, 4}, 2);
  Tensor y = pos(x);
  ASSERT_EQ(pos->variables().size(), 1u);
  Variable w = pos->variables()[0];
  EXPECT_EQ(w.name(), pos->name() + "/embeddings");
  EXPECT_EQ(w.shape(), (Shape{5, 4}));
  std::vector<float> xv = x.to_vector(), wv = w.value().to_vector(), yv = y.to_vector();
  for (int64_t b = 0; b < 3; ++b) {
    for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(yv[b * 20 + i], xv[b * 20 + i] + wv[i]);
  }
  // A shorter sequence reads the first rows, as keras_hub's PositionEmbedding.
  Tensor short_x = rand_tensor({2, 3, 4}, 3);
  std::vector<float> sv = short_x.to_vector(), got = pos(short_x).to_vector();
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t i = 0; i < 12; ++i) EXPECT_EQ(got[b * 12 + i], sv[b * 12 + i] + wv[i]);
  }
  // Masks pass through.
  Tensor mask = Tensor::from_vector({1, 1, 0, 1, 0, 0}, {2, 3});
  EXPECT_TRUE(bitwise_equal(pos.call_masked(MaskedTensor{short_x, mask}).mask, mask));
}

TEST(AddPositionEmbedding, BadShapesNameTheLayer) {
  Layer pos = AddPositionEmbedding(4, "glorot_uniform", "pos");
  pos(Tensor::zeros({1, 4, 3}));
  EXPECT_THROW(AddPositionEmbedding(0), std::invalid_argument);
  try {
    pos(Tensor::zeros({1, 5, 3}));
    ADD_FAILURE() << "a sequence longer than sequence_length was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'pos'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[1, 5, 3]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pos(Tensor::zeros({1, 4, 2})), std::invalid_argument);  // built for 3 features
  EXPECT_THROW(AddPositionEmbedding(4)(Tensor::zeros({4, 3})), std::invalid_argument);
}

TEST(AddPositionEmbedding, ConfigRoundTripsAndGradientIsTheSumOverTheBatch) {
  Layer pos = AddPositionEmbedding(6, "zeros", "pos_emb");
  Config c = pos->config();
  EXPECT_EQ(c.at("sequence_length").as_int(), 6);
  EXPECT_EQ(c.at("initializer").as_string(), "zeros");
  Layer back = layer_from_config("AddPositionEmbedding", c);
  EXPECT_EQ(back->config(), c);
  Config bad = c;
  bad.set("sequence_length", 0);
  EXPECT_THROW(layer_from_config("AddPositionEmbedding", bad), std::invalid_argument);
  // d(sum(y * r))/dw = sum over the batch of r; d/dx = r.
  Tensor x = rand_tensor({3, 6, 2}, 4), r = rand_tensor({3, 6, 2}, 5);
  pos(x);
  Variable w = pos->variables()[0];
  GradientTape tape;
  Tensor loss = reduce_sum(pos(x, true) * r);
  Tensor gw = tape.gradient(loss, std::vector<Variable>{w})[0];
  EXPECT_LE(max_abs_diff(gw, reduce_sum(r, {0})), 1e-6f);
}

applications::VisionTransformerOptions tiny_vit() {
  return {.patch_size = 7, .dim = 16, .depth = 2, .num_heads = 2, .mlp_dim = 32};
}

Tensor images(int64_t n, uint64_t seed) { return cast(rand_tensor({n, 28, 28, 1}, seed, 0.f, 255.f), DType::u8); }

TEST(VisionTransformer, ChecksItsOptions) {
  applications::VisionTransformerOptions o = tiny_vit();
  o.patch_size = 5;
  EXPECT_THROW(applications::vision_transformer(o), std::invalid_argument);
  o = tiny_vit();
  o.num_heads = 3;
  EXPECT_THROW(applications::vision_transformer(o), std::invalid_argument);
}

TEST(VisionTransformer, SaveLoadTraceInferenceModelAndOnnx) {
  set_global_seed(7);
  auto model = applications::vision_transformer(tiny_vit());
  // Patch embedding 7*7*16+16, position 16*16, per block 2 LayerNorms (2*32), attention
  // 4*(16*16+16), MLP 16*32+32 + 32*16+16; final LayerNorm 32; head 16*10+10.
  EXPECT_EQ(model->count_params(), (49 * 16 + 16) + 256 + 2 * (64 + 4 * 272 + 544 + 528) + 32 + 170);
  Tensor x = images(6, 8);
  Tensor y = model->predict(x);
  const std::string path = testing::temp_path("vit.kiln");
  save_model(*model, path);
  EXPECT_TRUE(bitwise_equal(load_model(path)->predict(x), y));
  // Traced at batch 2, run at 6: the batch stays free.
  graph::Graph g = graph::trace(*model, images(2, 9));
  EXPECT_EQ(g.values[g.inputs[0]].shape[0], graph::kBatch);
  int attention = 0;
  for (const auto& n : g.nodes) attention += n.call.op() == "scaled_dot_product_attention";
  EXPECT_EQ(attention, 2);
  EXPECT_TRUE(bitwise_equal(g.run(x), y));
  auto fp32 = runtime_export::trace(*model, images(2, 9));
  float d32 = max_abs_diff(fp32->run(x), y);
  std::printf("InferenceModel f32 vs predict: max abs diff %.3g\n", d32);
  EXPECT_LE(d32, 1e-4f);
  auto bf16 = runtime_export::trace(*model, images(2, 9), {.dtype = DType::bf16});
  float d16 = max_abs_diff(cast(bf16->run(x), DType::f32), y);
  std::printf("InferenceModel bf16 vs predict: max abs diff %.3g\n", d16);
  EXPECT_LE(d16, 0.1f);
  // ONNX: exported, checked, run by ONNX Runtime within 1e-4 and imported back.
  testing::expect_onnx_round_trip(g, {x}, "vit");
}

// int8 as the issue asks: Dense and the attention projections quantize; LayerNorm and the
// attention (its softmax) stay f32 and read f32 inputs.
TEST(VisionTransformer, QuantizesTheMatmulsAndKeepsLayerNormAndSoftmaxF32) {
  set_global_seed(10);
  auto model = applications::vision_transformer(tiny_vit());
  Tensor x = images(32, 11);
  Tensor y = model->predict(x);
  quant::QuantizeOptions o;
  o.verbose = false;
  auto q = quant::quantize(*model, data::Dataset::from_tensor_slices(x).batch(16), o);
  const graph::Graph& g = q->inference_graph();
  std::map<std::string, int> count;
  for (const auto& n : g.nodes) {
    ++count[n.call.op()];
    const std::string op = n.call.op();
    if (op == "layer_norm" || op == "scaled_dot_product_attention" || op == "softmax") {
      for (int v : n.inputs) EXPECT_TRUE(is_floating(g.values[v].dtype)) << op << " reads " << g.values[v].name;
    }
  }
  // Per block: the query, key, value and output projections and the two MLP Dense; the head.
  EXPECT_EQ(count["qlinear"], 2 * 6 + 1);
  EXPECT_EQ(count["layer_norm"], 2 * 2 + 1);
  EXPECT_EQ(count["scaled_dot_product_attention"], 2);
  EXPECT_EQ(count["linear"] + count["fused_linear"], 0);
  EXPECT_EQ(count["qconv2d"], 1);  // the patch embedding
  float err = max_abs_diff(q->run(x), y);
  double scale = 0;
  for (float v : y.to_vector()) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  std::printf("int8 ViT vs f32: max abs diff %.3g (largest logit %.3g)\n", err, scale);
  EXPECT_LT(err, 0.1 * scale);
}

}  // namespace
}  // namespace kiln
