// where, logical_not/and/or and erf (issue 23): the eager ops against double references in f32
// and bf16, finite-difference gradients of the differentiable ones (where, erf), then every
// other path: a trace run by Graph::run, the inference plan (f32, bf16), the int8 quantizer's
// pass-through, and ONNX export run by ONNX Runtime and imported back.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "graph/trace.h"
#include "quant/int8_support.h"
#include "runtime_export/inference_model.h"
#include "tensor/ops/ops.h"
#include "tensor/ops/registry.h"
#include "tests/gradcheck.h"
#include "tests/onnx_round_trip.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using testing::expect_forward_matches;
using testing::expect_gradients_match;
using testing::rand_tensor;

// A 1/0 condition with both values present, deterministic for a seed.
Tensor mask_tensor(const Shape& shape, uint64_t seed) {
  std::vector<float> v = rand_tensor(shape, seed).to_vector();
  for (float& x : v) x = x > 0.f ? 1.f : 0.f;
  return Tensor::from_vector(v, shape);
}

ref::RefTensor ref_where(const ref::RefTensor& c, const ref::RefTensor& a, const ref::RefTensor& b) {
  ref::RefTensor from_a = ref::binary(c, a, [](double c, double a) { return c != 0 ? a : 0.0; });
  ref::RefTensor from_b = ref::binary(c, b, [](double c, double b) { return c != 0 ? 0.0 : b; });
  return ref::binary(from_a, from_b, [](double a, double b) { return a + b; });
}

TEST(Where, MatchesReferenceWithBroadcasting) {
  struct Shapes { Shape c, a, b; };
  for (const Shapes& s : {Shapes{{3, 4}, {3, 4}, {3, 4}}, Shapes{{2, 1, 1, 5}, {2, 3, 4, 5}, {}},
                          Shapes{{4}, {3, 1}, {1, 4}}, Shapes{{2, 3, 1}, {1}, {2, 1, 6}}}) {
    Tensor c = mask_tensor(s.c, 1);
    auto f = [&](const std::vector<Tensor>& x) { return where(c, x[0], x[1]); };
    auto r = [&](const std::vector<ref::RefTensor>& x) { return ref_where(ref::from(c), x[0], x[1]); };
    std::vector<Tensor> in{rand_tensor(s.a, 2), rand_tensor(s.b, 3)};
    expect_forward_matches(f, r, in, testing::kF32);
    expect_forward_matches(f, r, in, testing::kBf16, DType::bf16);
  }
}

TEST(Where, SelectsInfinityWithoutNaNAndReadsAnyNonzeroAsTrue) {
  // masked_fill(mask, -inf): a select, so no 0 * inf NaN; a NaN or 0.5 condition is true.
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  Tensor c = Tensor::from_vector({0.f, 1.f, nan, 0.5f}, {4});
  Tensor a = Tensor::from_vector({1.f, 2.f, 3.f, 4.f}, {4});
  std::vector<float> y = where(c, a, Tensor::scalar(-inf)).to_vector();
  EXPECT_EQ(y[0], -inf);
  EXPECT_EQ(y[1], 2.f);
  EXPECT_EQ(y[2], 3.f);
  EXPECT_EQ(y[3], 4.f);
  // A u8 condition (an ONNX BOOL model input) and a transposed view of the values ([[1, 3, 5], [2, 4, 6]]).
  Tensor c8 = cast(Tensor::from_vector({1.f, 0.f, 0.f, 1.f, 1.f, 0.f}, {2, 3}), DType::u8);
  Tensor v = permute(Tensor::from_vector({1, 2, 3, 4, 5, 6}, {3, 2}), {1, 0});
  EXPECT_EQ(where(c8, v, Tensor::scalar(0.f)).to_vector(), (std::vector<float>{1, 0, 0, 2, 4, 0}));
}

TEST(Where, GradientsFlowToTheChosenSide) {
  for (auto [cs, as, bs] : {std::tuple<Shape, Shape, Shape>{{3, 4}, {3, 4}, {3, 4}},
                            std::tuple<Shape, Shape, Shape>{{2, 1, 4}, {2, 3, 4}, {4}},
                            std::tuple<Shape, Shape, Shape>{{3, 4}, {3, 1}, {}}}) {
    Tensor c = mask_tensor(cs, 4);
    auto f = [&](const std::vector<Tensor>& x) { return where(c, x[0], x[1]); };
    auto r = [&](const std::vector<ref::RefTensor>& x) { return ref_where(ref::from(c), x[0], x[1]); };
    expect_gradients_match(f, r, {rand_tensor(as, 5), rand_tensor(bs, 6)});
  }
}

TEST(Where, RefusesMismatchedInputs) {
  Tensor x = Tensor::ones({2, 3});
  EXPECT_THROW(where(x, x, Tensor::ones({2, 3}, DType::bf16)), std::invalid_argument);
  EXPECT_THROW(where(x, Tensor::ones({2, 3}, DType::s32), Tensor::ones({2, 3}, DType::s32)), std::invalid_argument);
  EXPECT_THROW(where(Tensor::ones({2, 3}, DType::s32), x, x), std::invalid_argument);
  try {
    where(Tensor::ones({4}), x, x);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("where"), std::string::npos) << e.what();
  }
}

TEST(Logical, TruthTablesWithBroadcastingInF32AndBf16) {
  const float nan = std::nanf("");
  for (DType dt : {DType::f32, DType::bf16}) {
    Tensor a = cast(Tensor::from_vector({0.f, 0.f, 1.f, 1.f, 2.f, nan}, {6}), dt);
    Tensor b = cast(Tensor::from_vector({0.f, 1.f, 0.f, 1.f, -3.f, 0.f}, {6}), dt);
    EXPECT_EQ(logical_not(a).dtype(), dt);
    EXPECT_EQ(cast(logical_not(a), DType::f32).to_vector(), (std::vector<float>{1, 1, 0, 0, 0, 0}));
    EXPECT_EQ(cast(logical_and(a, b), DType::f32).to_vector(), (std::vector<float>{0, 0, 0, 1, 1, 0}));
    EXPECT_EQ(cast(logical_or(a, b), DType::f32).to_vector(), (std::vector<float>{0, 1, 1, 1, 1, 1}));
    Tensor row = cast(Tensor::from_vector({1.f, 0.f}, {1, 2}), dt), col = cast(Tensor::from_vector({1.f, 0.f, 1.f}, {3, 1}), dt);
    EXPECT_EQ(logical_and(row, col).shape(), (Shape{3, 2}));
    EXPECT_EQ(cast(logical_and(row, col), DType::f32).to_vector(), (std::vector<float>{1, 0, 0, 0, 1, 0}));
  }
  EXPECT_THROW(logical_and(Tensor::ones({2}), Tensor::ones({3})), std::invalid_argument);
  EXPECT_THROW(logical_not(Tensor::ones({2}, DType::s32)), std::invalid_argument);
  // No gradient: op_table_test checks the flag; the ops record nothing on a tape.
  EXPECT_FALSE(ops::op_def(ops::OpKind::logical_not).differentiable);
  EXPECT_FALSE(ops::op_def(ops::OpKind::logical_and).differentiable);
  EXPECT_FALSE(ops::op_def(ops::OpKind::logical_or).differentiable);
}

TEST(Erf, MatchesReferenceAndItsGradient) {
  auto f = [](const std::vector<Tensor>& x) { return erf(x[0]); };
  auto r = [](const std::vector<ref::RefTensor>& x) { return ref::unary(x[0], [](double v) { return std::erf(v); }); };
  std::vector<Tensor> in{rand_tensor({3, 5, 7}, 7, -3.f, 3.f)};
  expect_forward_matches(f, r, in, testing::kF32);
  expect_forward_matches(f, r, in, testing::kBf16, DType::bf16);
  expect_gradients_match(f, r, in);
  expect_gradients_match(f, r, {permute(rand_tensor({4, 3}, 8, -2.f, 2.f), {1, 0})});
  EXPECT_THROW(erf(Tensor::ones({2}, DType::u8)), std::invalid_argument);
}

// The mask block of a BERT attention: scores masked by key padding with -inf, then a select
// and erf, all of issue 23's ops in one traced graph.
std::vector<Tensor> masked_block(const std::vector<Tensor>& in) {
  const Tensor& scores = in[0];                                   // [N, H, S, S]
  Tensor keep = greater(in[1], Tensor::scalar(0.5f));             // [N, 1, 1, S]
  Tensor valid = logical_and(keep, logical_not(equal(scores, Tensor::scalar(0.f))));
  Tensor masked = where(valid, scores, Tensor::scalar(-std::numeric_limits<float>::infinity()));
  Tensor p = softmax(masked, -1);
  Tensor either = logical_or(less(p, Tensor::scalar(0.1f)), keep);
  return {where(either, erf(scores), p)};
}

std::vector<Tensor> block_inputs(int64_t batch) {
  Tensor scores = rand_tensor({batch, 2, 5, 5}, 9, -2.f, 2.f);
  std::vector<float> m(batch * 5, 1.f);
  for (int64_t i = 0; i < batch; ++i) {
    for (int64_t j = 5 - i % 4; j < 5; ++j) m[i * 5 + j] = 0.f;  // padded tails of 0 to 3
  }
  return {scores, Tensor::from_vector(m, {batch, 1, 1, 5})};
}

TEST(MaskOps, TraceGraphRunPlanAndInt8Decisions) {
  graph::Graph g = graph::trace(masked_block, block_inputs(2));
  for (const char* op : {"where", "logical_not", "logical_and", "logical_or", "erf"}) {
    int k = 0;
    for (const auto& n : g.nodes) k += n.call.op() == op;
    EXPECT_GT(k, 0) << op;
  }
  std::vector<Tensor> xs = block_inputs(3);  // another batch: the graph kept it symbolic
  Tensor want = masked_block(xs)[0];
  EXPECT_LE(testing::max_abs_diff(g.run(xs)[0], want), 0.0);
  runtime_export::InferenceModel fp32(g);
  EXPECT_LE(testing::max_abs_diff(fp32.run(xs)[0], want), 1e-6);
  runtime_export::InferenceModel bf16(g, {.dtype = DType::bf16});
  EXPECT_LE(testing::max_abs_diff(bf16.run(xs)[0], want), 0.05);
  for (ops::OpKind k : {ops::OpKind::where, ops::OpKind::logical_not, ops::OpKind::logical_and,
                        ops::OpKind::logical_or, ops::OpKind::erf}) {
    EXPECT_EQ(quant::int8_role(k), quant::Int8Role::float_only) << ops::op_kind_name(k);
  }
}

TEST(MaskOps, OnnxRoundTrip) {
  graph::Graph g = graph::trace(masked_block, block_inputs(2));
  graph::Graph back = testing::expect_onnx_round_trip(g, block_inputs(3), "mask_ops");
  for (const char* op : {"where", "logical_not", "logical_and", "logical_or", "erf"}) {
    int k = 0;
    for (const auto& n : back.nodes) k += n.call.op() == op;
    EXPECT_GT(k, 0) << op << " after import";
  }
}

}  // namespace
}  // namespace kiln
