// The row-sparse embedding gradient (tensor/row_sparse.h): gather's gradient on axis 0 holds
// only the rows its indices used, and the optimizers apply it without a dense gradient to the
// same weights and slots as the dense gradient (plain()) gives.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include <algorithm>
#include <cmath>
#include <memory>

#include "autograd/gradient_tape.h"
#include "optim/optimizers.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"
#include "tensor/row_sparse.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using testing::max_abs_diff;

Tensor rand_table(const Shape& shape, uint64_t seed) { return random_uniform(shape, -1.f, 1.f, seed); }

// d(sum(gather(table, ids) * weights)) / d table, dense, in double: the reference.
std::vector<double> expected_gradient(const std::vector<int32_t>& ids, const Tensor& weights, int64_t rows, int64_t dim) {
  std::vector<double> out(rows * dim, 0.0);
  std::vector<float> w = weights.to_vector();
  for (size_t j = 0; j < ids.size(); ++j) {
    for (int64_t k = 0; k < dim; ++k) out[ids[j] * dim + k] += w[j * dim + k];
  }
  return out;
}

TEST(RowSparseGradient, GatherOnAxisZeroHoldsOnlyTheUsedRowsWithDuplicatesSummed) {
  for (DType dtype : {DType::f32, DType::bf16}) {
    Variable table(rand_table({10, 4}, 1), "table");
    const std::vector<int32_t> ids{2, 0, 2, 5, 2, 0};
    Tensor weights = rand_table({2, 3, 4}, 2);
    Tensor grad;
    {
      GradientTape tape;
      Tensor looked_up = gather(cast(table.value(), dtype), Tensor::from_int32(ids, {2, 3}));
      EXPECT_EQ(looked_up.dtype(), dtype);
      Tensor loss = reduce_sum(cast(looked_up, DType::f32) * weights);
      grad = tape.gradient(loss, std::vector<Variable>{table})[0];
    }
    // The bf16 table's gradient came back through cast's backward: still row-sparse, now f32.
    ASSERT_TRUE(is_row_sparse(grad)) << dtype_name(dtype);
    EXPECT_EQ(grad.dtype(), DType::f32);
    EXPECT_EQ(grad.shape(), (Shape{10, 4}));
    EXPECT_EQ(row_sparse_layout(grad)->rows(), (std::vector<int32_t>{0, 2, 5}));
    EXPECT_EQ(grad.packed_layout()->bytes(), 3 * 4 * sizeof(float));
    std::vector<double> want = expected_gradient(ids, weights, 10, 4);
    std::vector<float> got = grad.plain().to_vector();
    const double tolerance = dtype == DType::f32 ? 1e-6 : 3e-2;  // bf16: the summed rows are rounded to bf16
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], tolerance) << dtype_name(dtype) << " at " << i;
  }
}

TEST(RowSparseGradient, Bf16TableGradientIsBf16Rows) {
  Tensor table = cast(rand_table({6, 3}, 3), DType::bf16);
  GradientTape tape;
  tape.watch(table);
  Tensor loss = reduce_sum(cast(gather(table, Tensor::from_int32({4, 1, 4}, {3})), DType::f32));
  Tensor grad = tape.gradient(loss, table);
  ASSERT_TRUE(is_row_sparse(grad));
  EXPECT_EQ(grad.dtype(), DType::bf16);
  EXPECT_EQ(row_sparse_layout(grad)->rows(), (std::vector<int32_t>{1, 4}));
  EXPECT_EQ(row_sparse_values(grad).to_vector(), (std::vector<float>{1, 1, 1, 2, 2, 2}));
}

TEST(RowSparseGradient, OtherAxesStayDense) {
  Tensor table = rand_table({3, 5}, 4);
  GradientTape tape;
  tape.watch(table);
  Tensor loss = reduce_sum(gather(table, Tensor::from_int32({4, 0, 4}, {3}), 1));
  Tensor grad = tape.gradient(loss, table);
  EXPECT_FALSE(grad.is_packed());
  EXPECT_EQ(grad.to_vector(), (std::vector<float>{1, 0, 0, 0, 2, 1, 0, 0, 0, 2, 1, 0, 0, 0, 2}));
}

// A table read twice: the tape adds two row-sparse gradients sparsely; read densely too, the
// sum is dense and still right.
TEST(RowSparseGradient, GradientsOfOneTableAddUp) {
  Variable table(rand_table({8, 2}, 5), "table");
  for (bool also_dense : {false, true}) {
    GradientTape tape;
    Tensor loss = reduce_sum(gather(table.value(), Tensor::from_int32({1, 6}, {2}))) +
                  reduce_sum(gather(table.value(), Tensor::from_int32({6, 3, 3}, {3}))) * Tensor::scalar(10.f);
    if (also_dense) loss = loss + reduce_sum(table.value());
    Tensor grad = tape.gradient(loss, std::vector<Variable>{table})[0];
    EXPECT_EQ(is_row_sparse(grad), !also_dense);
    if (!also_dense) {
      EXPECT_EQ(row_sparse_layout(grad)->rows(), (std::vector<int32_t>{1, 3, 6}));
    }
    const float d = also_dense ? 1.f : 0.f;
    EXPECT_EQ(grad.plain().to_vector(), (std::vector<float>{d, d, 1 + d, 1 + d, d, d, 20 + d, 20 + d, d, d, d, d,
                                                            11 + d, 11 + d, d, d}));
  }
}

TEST(RowSparseGradient, LayoutRefusesWhatItCannotHold) {
  EXPECT_THROW(make_row_sparse({4, 2}, {2, 1}, Tensor::zeros({2, 2})), std::invalid_argument);  // not increasing
  EXPECT_THROW(make_row_sparse({4, 2}, {1, 4}, Tensor::zeros({2, 2})), std::invalid_argument);  // out of range
  EXPECT_THROW(make_row_sparse({4, 2}, {1}, Tensor::zeros({2, 2})), std::invalid_argument);     // values' rows
  EXPECT_THROW(make_row_sparse({4, 2}, {1}, Tensor::zeros({1, 2}, DType::s32)), std::invalid_argument);
  Tensor sparse = make_row_sparse({4, 2}, {1, 3}, Tensor::from_vector({1, 2, 3, 4}, {2, 2}));
  EXPECT_EQ(sparse.plain().to_vector(), (std::vector<float>{0, 0, 1, 2, 0, 0, 3, 4}));
  EXPECT_THROW(sparse.copy_from(Tensor::ones({4, 2})), std::logic_error);  // rows 0 and 2 would be lost
  sparse.copy_from(Tensor::from_vector({0, -0.f, 5, 6, 0, 0, 7, 8}, {4, 2}));
  EXPECT_EQ(row_sparse_values(sparse).to_vector(), (std::vector<float>{5, 6, 7, 8}));
}

// Three steps with different (repeating) indices, once with the row-sparse gradients and once
// with the same gradients made dense: the weights and every optimizer slot agree.
void expect_sparse_update_matches_dense(const std::function<std::unique_ptr<optim::Optimizer>()>& make,
                                        const std::string& what, DType table_dtype = DType::f32) {
  SCOPED_TRACE(what + " " + dtype_name(table_dtype));
  const int64_t rows = 40, dim = 5;  // the steps leave several runs of untouched rows between used ones
  Variable sparse_table(rand_table({rows, dim}, 11), "embeddings");
  Variable dense_table(sparse_table.value().clone_detached(), "embeddings");
  std::unique_ptr<optim::Optimizer> sparse_opt = make(), dense_opt = make();
  const std::vector<std::vector<int32_t>> steps{{3, 17, 3, 39, 0}, {5, 6, 7, 5}, {39, 20, 21, 22, 3}};
  for (size_t s = 0; s < steps.size(); ++s) {
    Tensor ids = Tensor::from_int32(steps[s], {static_cast<int64_t>(steps[s].size())});
    Tensor weights = rand_table({static_cast<int64_t>(steps[s].size()), dim}, 20 + s);
    auto gradient_of = [&](const Variable& table) {
      GradientTape tape;
      Tensor looked_up = cast(gather(cast(table.value(), table_dtype), ids), DType::f32);
      Tensor loss = reduce_sum(looked_up * weights);
      return tape.gradient(loss, std::vector<Variable>{table})[0];
    };
    Tensor sparse_grad = gradient_of(sparse_table), dense_grad = gradient_of(dense_table).plain();
    ASSERT_TRUE(is_row_sparse(sparse_grad));
    ASSERT_FALSE(dense_grad.is_packed());
    sparse_opt->apply_gradients({sparse_grad}, {sparse_table});
    dense_opt->apply_gradients({dense_grad}, {dense_table});
    EXPECT_LE(max_abs_diff(sparse_table.value(), dense_table.value()), 1e-7f) << "step " << s + 1;
  }
  auto sparse_slots = sparse_opt->slot_state({sparse_table}), dense_slots = dense_opt->slot_state({dense_table});
  ASSERT_EQ(sparse_slots.size(), dense_slots.size());
  for (size_t k = 0; k < sparse_slots.size(); ++k) {
    EXPECT_LE(max_abs_diff(sparse_slots[k].second, dense_slots[k].second), 1e-7f) << sparse_slots[k].first;
  }
  // The weights moved (the comparison is not between two untouched tables).
  EXPECT_GT(max_abs_diff(sparse_table.value(), rand_table({rows, dim}, 11)), 1e-4f);
}

TEST(RowSparseGradient, OptimizersApplyItAsTheDenseGradient) {
  using namespace optim;
  expect_sparse_update_matches_dense([] { return std::make_unique<SGD>(SGDOptions{.learning_rate = 0.1f}); }, "SGD");
  expect_sparse_update_matches_dense(
      [] { return std::make_unique<SGD>(SGDOptions{.learning_rate = 0.1f, .momentum = 0.9f, .nesterov = true}); },
      "SGD nesterov momentum");
  expect_sparse_update_matches_dense(
      [] { return std::make_unique<SGD>(SGDOptions{.learning_rate = 0.1f, .weight_decay = 0.1f}); },
      "SGD weight decay");
  expect_sparse_update_matches_dense(
      [] { return std::make_unique<SGD>(SGDOptions{.learning_rate = 0.1f, .momentum = 0.5f, .weight_decay = 0.1f,
                                                   .pytorch_style = true}); },
      "SGD pytorch_style L2 (the dense fallback)");
  expect_sparse_update_matches_dense([] { return std::make_unique<Adam>(AdamOptions{.learning_rate = 0.01f}); }, "Adam");
  expect_sparse_update_matches_dense([] { return std::make_unique<Adam>(AdamOptions{.learning_rate = 0.01f}); }, "Adam",
                                     DType::bf16);
  expect_sparse_update_matches_dense(
      [] { return std::make_unique<Adam>(AdamOptions{.learning_rate = 0.01f, .amsgrad = true, .pytorch_style = true}); },
      "Adam amsgrad pytorch_style");
  expect_sparse_update_matches_dense([] { return std::make_unique<AdamW>(AdamWOptions{.learning_rate = 0.01f}); },
                                     "AdamW");
  expect_sparse_update_matches_dense(
      [] { return std::make_unique<RMSprop>(RMSpropOptions{.learning_rate = 0.01f, .momentum = 0.5f, .centered = true}); },
      "RMSprop centered momentum");
  expect_sparse_update_matches_dense(
      [] { return std::make_unique<Adam>(AdamOptions{.learning_rate = 0.01f, .clip = {.clipnorm = 0.5f}}); },
      "Adam clipnorm");
  expect_sparse_update_matches_dense(
      [] { return std::make_unique<SGD>(SGDOptions{.learning_rate = 0.1f, .clip = {.global_clipnorm = 0.5f}}); },
      "SGD global_clipnorm");
  expect_sparse_update_matches_dense(
      [] { return std::make_unique<Adam>(AdamOptions{.learning_rate = 0.01f, .clip = {.clipvalue = 0.3f}}); },
      "Adam clipvalue", DType::bf16);
}

// A large table: the gradient and the SGD step keep to the rows used (plain SGD leaves the
// other rows' bits alone), and Adam moves untouched rows as its dense formula does.
TEST(RowSparseGradient, LargeTableTouchesOnlyItsRows) {
  const int64_t vocab = 20000, dim = 64;
  Variable table(rand_table({vocab, dim}, 30), "embeddings");
  const Tensor before = table.value().clone_detached();
  Tensor ids = Tensor::from_int32({7, 19999, 7, 123}, {4});
  auto gradient = [&] {
    GradientTape tape;
    Tensor loss = reduce_sum(gather(table.value(), ids));
    return tape.gradient(loss, std::vector<Variable>{table})[0];
  };
  Tensor grad = gradient();
  ASSERT_TRUE(is_row_sparse(grad));
  EXPECT_EQ(grad.packed_layout()->bytes(), 3 * dim * sizeof(float));  // not vocab x dim
  optim::SGD sgd(0.5f);
  sgd.apply_gradients({grad}, {table});
  std::vector<float> a = before.to_vector(), b = table.value().to_vector();
  int64_t changed_rows = 0;
  for (int64_t r = 0; r < vocab; ++r) {
    bool changed = false;
    for (int64_t k = 0; k < dim; ++k) changed |= a[r * dim + k] != b[r * dim + k];
    changed_rows += changed;
  }
  EXPECT_EQ(changed_rows, 3);
  EXPECT_FLOAT_EQ(b[7 * dim], a[7 * dim] - 0.5f * 2);
  // Adam's second step: untouched rows move with the decayed first moment of step 1.
  optim::Adam adam(0.01f);
  Variable other(before.clone_detached(), "other");
  for (int s = 0; s < 2; ++s) {
    GradientTape tape;
    Tensor loss = reduce_sum(gather(other.value(), s == 0 ? ids : Tensor::from_int32({5}, {1})));
    adam.apply_gradients(tape.gradient(loss, std::vector<Variable>{other}), {other});
  }
  std::vector<float> c = other.value().to_vector();
  EXPECT_NE(c[123 * dim], a[123 * dim] - 0.01f);  // not just step 1's move: step 2 moved it again
  EXPECT_LT(c[123 * dim], a[123 * dim] - 0.01f);
  EXPECT_EQ(c[50 * dim], a[50 * dim]);  // never touched: m = v = 0, no move
}

}  // namespace
}  // namespace kiln
