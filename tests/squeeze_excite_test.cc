// The squeeze-excite multiply x * s, x [N, H, W, C] and s [N, 1, 1, C] computed from x itself,
// in the inference plan. It cannot be a post-op of a convolution: the conv making x cannot
// take it (s depends on that conv's own output), the conv making s has s's shape, not x's, and
// the conv after it would need a per-sample scale of its input channels. So the plan runs it
// as one oneDNN binary with s broadcast, on x in whatever blocked layout x's conv chose (no
// reorder to plain and back, as the eager fallback needs). Checked here: numerics against the
// eager graph with and without that kernel, and that the multiply ran as the binary.
#include <gtest/gtest.h>

#include <cmath>

#include "graph/trace.h"
#include "kiln.h"
#include "runtime_export/inference_model.h"
#include "tensor/onednn/isa.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using testing::max_abs_diff;

using namespace kiln::nn;
using runtime_export::InferenceModel;

// MobileNetV3's block: expand conv, depthwise-style conv, SE (pool, conv, relu, conv,
// hard_sigmoid, multiply), project conv.
std::shared_ptr<Model> se_block(bool scale_first) {
  set_global_seed(5);
  auto in = Input({8, 8, 16});
  Conv2DOptions same;
  same.padding = "same";
  auto x = Conv2D(32, 1, "hard_swish")(in);
  x = Conv2D(32, 3, "relu", same)(x);
  auto s = GlobalAveragePooling2D(true)(x);
  s = Conv2D(8, 1, "relu")(s);
  s = Conv2D(32, 1)(s);
  s = Activation("hard_sigmoid")(s);
  auto y = scale_first ? Multiply()({s, x}) : Multiply()({x, s});
  y = Conv2D(16, 1)(y);
  return std::make_shared<Model>(in, Add()({y, in}), "se_block");
}

TEST(SqueezeExcite, MultiplyRunsAsABroadcastBinaryOnTheBlockedActivation) {
  for (bool scale_first : {false, true}) {
    SCOPED_TRACE(scale_first ? "Multiply([s, x])" : "Multiply([x, s])");
    std::shared_ptr<Model> model = se_block(scale_first);
    for (int64_t batch : {1, 4}) {
      Tensor x = random_uniform({batch, 8, 8, 16}, -1.f, 1.f, 6);
      graph::Graph g = graph::trace(*model, x);
      Tensor want = model->predict(x);
      EXPECT_LE(max_abs_diff(g.run(x), want), 1e-6);
      InferenceModel fast(g);
      cpu::clear_impl_log();
      Tensor got = fast.run(x);
      EXPECT_LE(max_abs_diff(got, want), 2e-5);
      const std::string plan = fast.describe_plan({x.shape()});
      const std::string impl = cpu::last_impl("inference mul");
      // The multiply is a oneDNN binary with a jit kernel, or (where oneDNN has only its
      // reference kernel for this broadcast) the eager op: say which.
      std::printf("batch %lld: mul ran as '%s', eager steps %d\n", static_cast<long long>(batch), impl.c_str(),
                  fast.fallback_steps({x.shape()}));
      if (!impl.empty()) {
        EXPECT_EQ(impl.rfind("ref", 0), std::string::npos) << impl;
      }
      if (batch == 1) {
        EXPECT_FALSE(impl.empty()) << plan;  // a per-channel broadcast: jit everywhere
      }
      // bf16 plan: the same kernel in bf16.
      InferenceModel half(g, {.dtype = DType::bf16});
      double largest = 0;
      for (float v : want.to_vector()) largest = std::max(largest, std::fabs(double(v)));
      EXPECT_LE(max_abs_diff(half.run(x), want), 0.03 * largest + 0.02);
    }
  }
}

// Broadcast binaries the plan now runs, against the eager graph: sub (second operand
// broadcast only), maximum and minimum with either operand broadcast.
TEST(SqueezeExcite, BroadcastBinariesMatchTheEagerGraph) {
  Tensor k = random_uniform({1, 1, 3, 6}, -1.f, 1.f, 7), c = random_uniform({1, 1, 1, 6}, -1.f, 1.f, 8);
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor h = conv2d(in[0], k, Tensor(), {});
    Tensor s = reduce_mean(h, {1, 2}, true);
    return std::vector<Tensor>{sub(h, s), maximum(s, h) + minimum(h, c), mul(c, h), sub(s, h)};
  };
  Tensor x = random_uniform({3, 5, 4, 3}, -1.f, 1.f, 9);
  graph::Graph g = graph::trace(fn, {x}, {{"k", k}, {"c", c}});
  InferenceModel m(g);
  std::vector<Tensor> want = g.run(std::vector<Tensor>{x}), got = m.run(std::vector<Tensor>{x});
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_LE(max_abs_diff(got[i], want[i]), 1e-6) << i;
}

}  // namespace
}  // namespace kiln
