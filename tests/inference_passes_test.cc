// Each inference pass on its own (graph/passes/): what it rewrites, what it must
// leave alone, and that the rewritten graph computes what the original did.
#include <gtest/gtest.h>

#include <cmath>

#include "graph/trace.h"
#include "graph/passes/fold_batchnorm.h"
#include "graph/passes/fold_constants.h"
#include "graph/passes/fold_input_scale.h"
#include "graph/passes/fold_zero_padding.h"
#include "nn/layers/zero_padding.h"
#include "runtime_export/inference_model.h"
#include "graph/passes/fuse_post_ops.h"
#include "graph/passes/optimize_for_inference.h"
#include "graph/passes/remove_identities.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using testing::max_abs_diff;

using namespace graph::passes;

int count(const graph::Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes) n += node.call.op() == op;
  return n;
}

void expect_same_outputs(const graph::Graph& before, const graph::Graph& after, const Tensor& x, double tol) {
  after.validate();
  EXPECT_LE(max_abs_diff(before.run(x), after.run(x)), tol) << after.to_string();
}

TEST(FoldConstants, EvaluatesNodesOfConstantsOnce) {
  Tensor w = random_uniform({4, 3}, -1.f, 1.f, 1);
  auto fn = [&](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{matmul(in[0], transpose(transpose(w, 0, 1), 0, 1) * 2.f)};
  };
  Tensor x = random_uniform({5, 4}, -1.f, 1.f, 2);
  graph::Graph g = graph::trace(fn, {x}, {{"w", w}});
  graph::Graph folded = fold_constants(g);
  EXPECT_GT(g.nodes.size(), 1u);
  ASSERT_EQ(folded.nodes.size(), 1u) << folded.to_string();
  EXPECT_EQ(folded.nodes[0].call.op(), "matmul");
  expect_same_outputs(g, folded, x, 0);
}

TEST(RemoveIdentities, DropsNoOpsAndKeepsRealWork) {
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor h = contiguous(stop_gradient(affine(in[0], 1.f, 0.f)));
    return std::vector<Tensor>{affine(reshape(h, {5, 4}), 2.f, 0.f)};
  };
  Tensor x = random_uniform({5, 4}, -1.f, 1.f, 2);
  graph::Graph g = graph::trace(fn, {x});
  graph::Graph out = remove_identities(g);
  ASSERT_EQ(out.nodes.size(), 1u) << out.to_string();  // only the affine(2, 0)
  EXPECT_EQ(out.nodes[0].call.get_float("alpha"), 2.0);
  expect_same_outputs(g, out, x, 0);
}

struct ConvBn {
  Tensor w = random_uniform({3, 3, 2, 4}, -0.5f, 0.5f, 3), b = random_uniform({4}, -0.5f, 0.5f, 4);
  Tensor gamma = random_uniform({4}, 0.5f, 1.5f, 5), beta = random_uniform({4}, -0.5f, 0.5f, 6);
  Tensor mean = random_uniform({4}, -0.5f, 0.5f, 7), var = random_uniform({4}, 0.5f, 1.5f, 8);
  std::vector<std::pair<std::string, Tensor>> vars() const {
    return {{"w", w}, {"b", b}, {"gamma", gamma}, {"beta", beta}, {"mean", mean}, {"var", var}};
  }
  Tensor bn(const Tensor& h, bool relu) const { return batch_norm_inference(h, gamma, beta, mean, var, 1e-3f, relu); }
  Tensor conv(const Tensor& x) const { return conv2d(x, w, b, {.padding = Padding::same}); }
};

TEST(FoldBatchnorm, FoldsIntoTheConvBeforeItWithItsRelu) {
  ConvBn p;
  auto fn = [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{p.bn(p.conv(in[0]), true)}; };
  Tensor x = random_uniform({2, 5, 5, 2}, -1.f, 1.f, 9);
  graph::Graph g = graph::trace(fn, {x}, p.vars());
  graph::Graph out = fold_batchnorm(g);
  EXPECT_EQ(count(out, "batch_norm_inference"), 0) << out.to_string();
  ASSERT_EQ(count(out, "conv2d"), 1);
  EXPECT_EQ(out.nodes[0].call.get_string("activation"), "relu");
  expect_same_outputs(g, out, x, 1e-5);
}

TEST(FoldBatchnorm, LeavesAConvWhoseOutputIsReadTwice) {
  ConvBn p;
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor h = p.conv(in[0]);
    return std::vector<Tensor>{p.bn(h, false) + h};
  };
  Tensor x = random_uniform({2, 5, 5, 2}, -1.f, 1.f, 9);
  graph::Graph out = fold_batchnorm(graph::trace(fn, {x}, p.vars()));
  EXPECT_EQ(count(out, "batch_norm_inference"), 1);
}

TEST(FusePostOps, ResidualAddAndReluBecomeOneFusedConv) {
  ConvBn p;
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor skip = conv2d(in[0], p.w, Tensor(), {.padding = Padding::same});
    return std::vector<Tensor>{relu(add(p.conv(in[0]), skip))};
  };
  Tensor x = random_uniform({2, 5, 5, 2}, -1.f, 1.f, 9);
  graph::Graph g = graph::trace(fn, {x}, p.vars());
  graph::Graph out = fuse_post_ops(g);
  EXPECT_EQ(count(out, "add"), 0) << out.to_string();
  EXPECT_EQ(count(out, "relu"), 0);
  ASSERT_EQ(count(out, "fused_conv2d"), 1) << g.to_string() << out.to_string();
  for (const auto& n : out.nodes) {
    if (n.call.op() != "fused_conv2d") continue;
    EXPECT_EQ(n.inputs.size(), 4u);  // x, w, bias, residual
    EXPECT_EQ(n.call.get_string("activation"), "relu");
  }
  expect_same_outputs(g, out, x, 1e-6);
}

TEST(FusePostOps, DenseWithGeluAndAConvReadTwiceStaysPlain) {
  Tensor w = random_uniform({6, 3}, -1.f, 1.f, 1), b = random_uniform({3}, -1.f, 1.f, 2);
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor h = linear(in[0], w, b);
    Tensor g1 = gelu(linear(in[0], w, b), /*approximate=*/true);
    return std::vector<Tensor>{sigmoid(h) + h + g1};
  };
  Tensor x = random_uniform({4, 6}, -1.f, 1.f, 3);
  graph::Graph g = graph::trace(fn, {x}, {{"w", w}, {"b", b}});
  graph::Graph out = fuse_post_ops(g);
  EXPECT_EQ(count(out, "fused_linear"), 1) << out.to_string();
  EXPECT_EQ(count(out, "linear"), 1);  // h has two readers
  EXPECT_EQ(count(out, "gelu_tanh"), 0);
  expect_same_outputs(g, out, x, 1e-6);
}

TEST(FoldInputScale, RescalingMovesIntoTheWeightsThroughAFlatten) {
  Tensor w = random_uniform({12, 3}, -1.f, 1.f, 1), k = random_uniform({3, 3, 1, 2}, -1.f, 1.f, 2);
  auto dense = [&](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{linear(reshape(affine(in[0], 1.f / 255, 0.f), {in[0].shape()[0], 12}), w, Tensor())};
  };
  auto conv = [&](const std::vector<Tensor>& in) {
    Tensor s = affine(in[0], 0.5f, 0.f);
    return std::vector<Tensor>{conv2d(s, k, Tensor(), {}), relu(s)};  // s read twice: stays
  };
  Tensor x = random_uniform({2, 2, 6, 1}, 0.f, 255.f, 3);
  graph::Graph g = graph::trace(dense, {x}, {{"w", w}});
  graph::Graph out = fold_input_scale(g);
  EXPECT_EQ(count(out, "affine"), 0) << out.to_string();
  expect_same_outputs(g, out, x, 1e-5);
  graph::Graph g2 = graph::trace(conv, {random_uniform({2, 5, 5, 1}, 0.f, 255.f, 4)}, {{"k", k}});
  EXPECT_EQ(count(fold_input_scale(g2), "affine"), 1);
}

// ResNet's stem: ZeroPadding2D(3) + 7x7/2 conv + BN + ReLU, ZeroPadding2D(1) + 3x3/2 max pool;
// then zero padding before a max pool of values that may be negative, and before an average
// pool: those two must stay (both poolings leave their own padding out, the zeros count).
TEST(FoldZeroPadding, FoldsIntoConvAndMaxPoolOnlyWhereThatIsExact) {
  Tensor w = random_uniform({7, 7, 3, 4}, -0.5f, 0.5f, 1), b = random_uniform({4}, -0.5f, 0.5f, 2);
  Tensor g1 = random_uniform({4}, 0.5f, 1.5f, 3), b1 = random_uniform({4}, -0.5f, 0.5f, 4);
  Tensor m1 = random_uniform({4}, -0.5f, 0.5f, 5), v1 = random_uniform({4}, 0.5f, 1.5f, 6);
  nn::Layer pad3 = nn::ZeroPadding2D(3), pad1 = nn::ZeroPadding2D(1), pad_uneven = nn::ZeroPadding2D({{{1, 0}, {2, 1}}});
  Pool2dAttrs pool3s2{.pool_size = {3, 3}, .strides = {2, 2}};
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor h = conv2d(pad3(in[0]), w, b, {.strides = {2, 2}});
    h = relu(batch_norm_inference(h, g1, b1, m1, v1, 1e-3f, false));
    Tensor pooled = max_pool2d(pad1(h), pool3s2);  // folds: ReLU before it
    Tensor signed_pool = max_pool2d(pad_uneven(pooled - 0.5f), pool3s2);  // stays: may be negative
    Tensor avg = avg_pool2d(pad1(pooled), pool3s2);  // stays: the zeros count in the mean
    return std::vector<Tensor>{pooled, signed_pool, avg};
  };
  Tensor x = random_uniform({2, 20, 18, 3}, -1.f, 1.f, 7);
  graph::Graph g = graph::trace(fn, {x}, {{"w", w}, {"b", b}, {"g1", g1}, {"b1", b1}, {"m1", m1}, {"v1", v1}});
  ASSERT_EQ(count(g, "pad"), 4) << g.to_string();  // one per ZeroPadding2D
  graph::Graph out = optimize_for_inference(g);
  EXPECT_EQ(count(out, "pad"), 2) << out.to_string();
  int explicit_pads = 0;
  for (const auto& n : out.nodes) {
    if (!n.call.has("padding") || n.call.get_string("padding") != "explicit") continue;
    ++explicit_pads;
    EXPECT_EQ(n.call.get_ints("pads"), (n.call.op() == "max_pool2d" ? std::vector<int64_t>{1, 1, 1, 1}
                                                                      : std::vector<int64_t>{3, 3, 3, 3}));
  }
  EXPECT_EQ(explicit_pads, 2) << out.to_string();
  // The folded graph, run by Graph::run and by the inference plan, gives what the unfolded one gives.
  const std::vector<Tensor> want = g.run(std::vector<Tensor>{x});
  runtime_export::InferenceModel plan(g);
  for (const std::vector<Tensor>& got : {out.run(std::vector<Tensor>{x}), plan.run(std::vector<Tensor>{x})}) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_LE(max_abs_diff(want[i], got[i]), 1e-5) << i;
  }
  // Alone (no fusion first), the pass sees the separate ReLU and folds the same two.
  graph::Graph alone = fold_zero_padding(g);
  EXPECT_EQ(count(alone, "pad"), 2) << alone.to_string();
  const std::vector<Tensor> again = alone.run(std::vector<Tensor>{x});
  for (size_t i = 0; i < again.size(); ++i) EXPECT_EQ(max_abs_diff(want[i], again[i]), 0.0) << i;
}

TEST(OptimizeForInference, ChainsThePassesAndValidates) {
  ConvBn p;
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor h = p.bn(conv2d(stop_gradient(in[0]), p.w, Tensor(), {.padding = Padding::same}), false);
    return std::vector<Tensor>{relu(h + in[0] * 0.f + contiguous(in[0]))};
  };
  Tensor x = random_uniform({2, 5, 5, 4}, -1.f, 1.f, 9);
  Tensor w4 = random_uniform({3, 3, 4, 4}, -0.5f, 0.5f, 3);
  p.w = w4;
  graph::Graph g = graph::trace(fn, {x}, p.vars());
  graph::Graph out = optimize_for_inference(g);
  EXPECT_EQ(count(out, "batch_norm_inference"), 0) << out.to_string();
  EXPECT_EQ(count(out, "identity"), 0);
  EXPECT_EQ(count(out, "contiguous"), 0);
  expect_same_outputs(g, out, x, 1e-5);
}

}  // namespace
}  // namespace kiln
