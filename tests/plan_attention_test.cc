// The inference plan's attention path (runtime_export/plan/attention.cc, shape.cc's permute
// views) and its in-place residual Dense (linear.cc): numerically the eager ops within float
// rounding, with no copy of q, k, v or the attention output and no eager step, over odd
// shapes (T not a multiple of 16, 1 and 3 heads, batch 1), bf16, and graphs that use the
// views in other ways (a permute as the output, into an add, into a Dense, read twice).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "graph/trace.h"
#include "nn/layers/layers.h"
#include "nn/model.h"
#include "nn/symbolic.h"
#include "runtime_export/inference_model.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"
#include "tests/gradcheck.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using testing::max_abs_diff;
using testing::rand_tensor;

int count_of(const std::string& plan, const std::string& kind) {
  const std::string key = kind + ": ";
  size_t at = plan.find(key);
  if (at == std::string::npos) return 0;
  if (at > 0 && plan.compare(at - 2, 2, ", ") != 0) return 0;  // a longer kind ending in `kind`
  return std::stoi(plan.substr(at + key.size()));
}

// x [T, C] -> MultiHeadAttention -> residual add -> Dense(gelu) -> Dense + residual: the
// encoder block's attention and MLP halves.
std::shared_ptr<nn::Model> attention_block(int64_t t, int64_t c, int64_t heads, int64_t key_dim) {
  nn::SymbolicTensor x = nn::Input({t, c});
  nn::SymbolicTensor h = nn::MultiHeadAttention(heads, key_dim)({x, x});
  nn::SymbolicTensor attended = nn::Add()({x, h});
  h = nn::LayerNormalization()(attended);
  h = nn::Dense(2 * c, "gelu")(h);
  h = nn::Dense(c)(h);
  return std::make_shared<nn::Model>(x, nn::Add()({attended, h}));
}

TEST(PlanAttention, MultiHeadAttentionMatchesPredictWithoutCopies) {
  struct Case {
    int64_t t, c, heads, key_dim, batch;
  };
  for (const Case& k : {Case{13, 12, 1, 8, 1}, Case{13, 12, 3, 5, 4}, Case{49, 64, 4, 16, 2}, Case{17, 9, 3, 16, 1},
                        Case{16, 8, 2, 4, 3}, Case{1, 6, 3, 2, 2}}) {
    SCOPED_TRACE("T=" + std::to_string(k.t) + " C=" + std::to_string(k.c) + " heads=" + std::to_string(k.heads) +
                 " key_dim=" + std::to_string(k.key_dim) + " batch=" + std::to_string(k.batch));
    set_global_seed(3);
    auto model = attention_block(k.t, k.c, k.heads, k.key_dim);
    Tensor x = rand_tensor({k.batch, k.t, k.c}, 11);
    Tensor y = model->predict(x);
    auto fp32 = runtime_export::trace(*model, rand_tensor({2, k.t, k.c}, 12));
    const std::string plan = fp32->describe_plan({x.shape()});
    EXPECT_EQ(count_of(plan, "attention scores"), 1) << plan;
    EXPECT_EQ(count_of(plan, "attention softmax"), 1) << plan;
    EXPECT_EQ(count_of(plan, "attention output"), 1) << plan;
    // q, k and v are read through their strides and the output lands where the Dense after it
    // reads it: nothing is reordered. The second residual is summed in place; the first is
    // the model's input, which the plan never overwrites.
    EXPECT_EQ(count_of(plan, "reorder"), 0) << plan;
    EXPECT_EQ(count_of(plan, "residual copy"), 1) << plan;
    EXPECT_EQ(fp32->fallback_steps({x.shape()}), 0) << plan;
    EXPECT_LE(max_abs_diff(fp32->run(x), y), 2e-5f);

    auto bf16 = runtime_export::trace(*model, rand_tensor({2, k.t, k.c}, 12), {.dtype = DType::bf16});
    EXPECT_EQ(count_of(bf16->describe_plan({x.shape()}), "attention output"), 1);
    EXPECT_LE(max_abs_diff(cast(bf16->run(x), DType::f32), y), 0.1f);
  }
}

// The op on its own, its inputs as given or as permuted views, its output plain, permuted,
// or read twice; rank 3 and 4, Tq != Tk, Dv != D, a scale of its own.
TEST(PlanAttention, ScaledDotProductAttentionMatchesTheEagerOp) {
  struct Variant {
    const char* name;
    std::function<std::vector<Tensor>(const std::vector<Tensor>&)> fn;
    std::vector<Tensor> inputs;
  };
  auto heads_first = [](const Tensor& t) { return permute(t, {0, 2, 1, 3}); };
  std::vector<Variant> variants = {
      {"plain inputs, plain output",
       [](const std::vector<Tensor>& x) { return std::vector<Tensor>{scaled_dot_product_attention(x[0], x[1], x[2])}; },
       {rand_tensor({2, 3, 5, 8}, 1), rand_tensor({2, 3, 7, 8}, 2), rand_tensor({2, 3, 7, 3}, 3)}},
      {"rank 3, scale 0.7",
       [](const std::vector<Tensor>& x) {
         return std::vector<Tensor>{scaled_dot_product_attention(x[0], x[1], x[2], Tensor(), {.scale = 0.7})};
       },
       {rand_tensor({4, 19, 6}, 4), rand_tensor({4, 18, 6}, 5), rand_tensor({4, 18, 5}, 6)}},
      {"permuted inputs and output",
       [&](const std::vector<Tensor>& x) {
         return std::vector<Tensor>{
             heads_first(scaled_dot_product_attention(heads_first(x[0]), heads_first(x[1]), heads_first(x[2])))};
       },
       {rand_tensor({1, 13, 3, 4}, 7), rand_tensor({1, 21, 3, 4}, 8), rand_tensor({1, 21, 3, 4}, 9)}},
      {"permuted output read twice",
       [&](const std::vector<Tensor>& x) {
         Tensor o = scaled_dot_product_attention(heads_first(x[0]), heads_first(x[1]), heads_first(x[2]));
         return std::vector<Tensor>{heads_first(o), o * 2.f};
       },
       {rand_tensor({3, 9, 1, 5}, 10), rand_tensor({3, 9, 1, 5}, 11), rand_tensor({3, 9, 1, 5}, 12)}},
      {"one tensor as q, k and v",
       [&](const std::vector<Tensor>& x) {
         Tensor h = heads_first(x[0]);
         return std::vector<Tensor>{reshape(heads_first(scaled_dot_product_attention(h, h, h)), {2, 11, 12})};
       },
       {rand_tensor({2, 11, 3, 4}, 13)}},
  };
  for (const Variant& var : variants) {
    SCOPED_TRACE(var.name);
    std::vector<Tensor> eager = var.fn(var.inputs);
    graph::Graph g = graph::trace(var.fn, var.inputs);
    runtime_export::InferenceModel im(g);
    std::vector<Shape> shapes;
    for (const Tensor& t : var.inputs) shapes.push_back(t.shape());
    const std::string plan = im.describe_plan(shapes);
    EXPECT_EQ(count_of(plan, "attention scores"), 1) << plan;
    EXPECT_EQ(im.fallback_steps(shapes), 0) << plan;
    std::vector<Tensor> got = im.run(var.inputs);
    ASSERT_EQ(got.size(), eager.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_LE(max_abs_diff(got[i], eager[i]), 1e-5f) << "output " << i;
  }
}

// A permute is a view: copied only where a consumer needs plain data, and exact.
TEST(PlanPermute, ViewsFeedEveryConsumerExactly) {
  Tensor w = rand_tensor({4, 6}, 20);
  struct Variant {
    const char* name;
    std::function<std::vector<Tensor>(const std::vector<Tensor>&)> fn;
    std::vector<Tensor> inputs;
    float tolerance;
  };
  std::vector<Variant> variants = {
      {"4-D output", [](const std::vector<Tensor>& x) { return std::vector<Tensor>{permute(x[0], {0, 3, 1, 2})}; },
       {rand_tensor({2, 3, 4, 5}, 21)}, 0.f},
      {"negative axes, 3-D", [](const std::vector<Tensor>& x) { return std::vector<Tensor>{permute(x[0], {-1, 0, -2})}; },
       {rand_tensor({2, 3, 4}, 22)}, 0.f},
      {"into an add", [](const std::vector<Tensor>& x) { return std::vector<Tensor>{permute(x[0], {0, 2, 1}) + x[1]}; },
       {rand_tensor({2, 5, 3}, 23), rand_tensor({2, 3, 5}, 24)}, 0.f},
      {"permute of a permute is plain",
       [](const std::vector<Tensor>& x) { return std::vector<Tensor>{relu(permute(permute(x[0], {2, 0, 1}), {1, 2, 0}))}; },
       {rand_tensor({2, 3, 4}, 25)}, 0.f},
      {"into a Dense", [w](const std::vector<Tensor>& x) { return std::vector<Tensor>{linear(permute(x[0], {0, 2, 1}), w, Tensor())}; },
       {rand_tensor({2, 4, 7}, 26)}, 1e-5f},
  };
  for (const Variant& var : variants) {
    SCOPED_TRACE(var.name);
    std::vector<Tensor> eager = var.fn(var.inputs);
    graph::Graph g = graph::trace(var.fn, var.inputs);
    runtime_export::InferenceModel im(g);
    std::vector<Shape> shapes;
    for (const Tensor& t : var.inputs) shapes.push_back(t.shape());
    EXPECT_EQ(count_of(im.describe_plan(shapes), "eager permute"), 0) << im.describe_plan(shapes);
    std::vector<Tensor> got = im.run(var.inputs);
    ASSERT_EQ(got.size(), eager.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_LE(max_abs_diff(got[i], eager[i]), var.tolerance);
  }
  // permute then permute back: no step at all but the output's copy.
  auto round_trip = [](const std::vector<Tensor>& x) { return std::vector<Tensor>{relu(permute(permute(x[0], {2, 0, 1}), {1, 2, 0}))}; };
  runtime_export::InferenceModel im(graph::trace(round_trip, {rand_tensor({2, 3, 4}, 27)}));
  EXPECT_EQ(count_of(im.describe_plan({{2, 3, 4}}), "reorder"), 0) << im.describe_plan({{2, 3, 4}});
}

// The residual sum runs in place only where nothing reads the residual's buffer afterwards.
TEST(PlanResidual, InPlaceOnlyWhenTheResidualIsDead) {
  Tensor w = rand_tensor({6, 6}, 30), b = rand_tensor({6}, 31);
  Tensor x = rand_tensor({5, 3, 6}, 32);
  struct Variant {
    const char* name;
    graph::TensorFunction fn;
    int residual_copies;
  };
  std::vector<Variant> variants = {
      // r read again after the sum: its bytes must survive it.
      {"residual read again",
       [&](const std::vector<Tensor>& in) {
         Tensor r = relu(in[0]);
         return std::vector<Tensor>{(linear(in[0], w, b) + r) * r};
       },
       1},
      {"residual dead",
       [&](const std::vector<Tensor>& in) {
         Tensor r = relu(in[0]);
         return std::vector<Tensor>{linear(in[0], w, b) + r};
       },
       0},
      // The residual is the Dense's own input: summing into it would overwrite what it reads.
      {"residual is the input",
       [&](const std::vector<Tensor>& in) {
         Tensor r = relu(in[0]);
         return std::vector<Tensor>{linear(r, w, b) + r};
       },
       1},
  };
  for (const Variant& var : variants) {
    SCOPED_TRACE(var.name);
    std::vector<Tensor> eager = var.fn({x});
    runtime_export::InferenceModel im(graph::trace(var.fn, {x}));
    const std::string plan = im.describe_plan({x.shape()});
    EXPECT_EQ(count_of(plan, "linear"), 1) << plan;
    EXPECT_EQ(count_of(plan, "residual copy"), var.residual_copies) << plan;
    EXPECT_LE(max_abs_diff(im.run(std::vector<Tensor>{x})[0], eager[0]), 1e-5f) << plan;
  }
}

}  // namespace
}  // namespace kiln
