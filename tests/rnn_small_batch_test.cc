// tensor/ops/rnn_small_batch.h, the inference kernel for a few rows, against oneDNN's RNN
// primitives (onednn_rnn_forward) for LSTM, GRU and SimpleRNN: batches 1 to 8, unit counts
// that fill no vector, one and several, initial states, one thread and two, bf16; then the
// public ops at a small batch (which take the kernel) against the same rows run at a batch
// large enough for oneDNN, with go_backwards, masks and return_sequences' final states.
#include <gtest/gtest.h>
#include <omp.h>

#include <string>
#include <vector>

#include "tensor/ops/cast.h"
#include "tensor/ops/ops.h"
#include "tensor/ops/rnn_primitive.h"
#include "tensor/ops/rnn_small_batch.h"
#include "tests/gradcheck.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using rnn_detail::RnnCell;
using rnn_detail::RnnWeights;

// f32 arithmetic on both sides, summed in different orders over up to U + I terms.
constexpr float kF32Tolerance = 2e-5f;
// oneDNN's bf16 RNN rounds h to bf16 between steps and the kernel keeps it in f32.
constexpr float kBf16Tolerance = 4e-2f;
// A batch that takes oneDNN's primitive.
constexpr int64_t kLargeBatch = 300;

RnnWeights weights_of(RnnCell cell, int64_t in, int64_t u, DType dtype, uint64_t seed) {
  const int g = rnn_detail::gate_count(cell);
  auto as = [&](const Tensor& t) { return dtype == DType::f32 ? t : cast(t, dtype); };
  return {as(testing::rand_tensor({in, g * u}, seed, -0.5f, 0.5f)),
          as(testing::rand_tensor({u, g * u}, seed + 1, -0.5f, 0.5f)),
          testing::rand_tensor({rnn_detail::bias_gate_count(cell), u}, seed + 2, -0.5f, 0.5f)};
}

const RnnCell kCells[] = {RnnCell::lstm, RnnCell::gru, RnnCell::simple_rnn};

using rnn_detail::SmallBatchSplit;

struct Way {
  int threads;
  SmallBatchSplit split;
};

std::string describe(Way w) {
  return std::to_string(w.threads) + (w.split == SmallBatchSplit::rows    ? " rows"
                                      : w.split == SmallBatchSplit::units ? " units"
                                                                          : " chosen");
}

void expect_same_pass(RnnCell cell, int64_t n, int64_t t, int64_t in, int64_t u, bool states, DType dtype,
                      Way way) {
  SCOPED_TRACE(std::string(rnn_detail::cell_name(cell)) + " n=" + std::to_string(n) + " t=" + std::to_string(t) +
               " i=" + std::to_string(in) + " u=" + std::to_string(u) + " states=" + std::to_string(states) +
               " dtype=" + dtype_name(dtype) + " threads=" + describe(way));
  const uint64_t seed = 17 * n + u;
  Tensor x = testing::rand_tensor({n, t, in}, seed, -2.f, 2.f);
  if (dtype != DType::f32) x = cast(x, dtype);
  const RnnWeights w = weights_of(cell, in, u, dtype, seed + 10);
  Tensor h0 = states ? testing::rand_tensor({n, u}, seed + 20) : Tensor::zeros({n, u});
  if (dtype != DType::f32) h0 = cast(h0, dtype);
  Tensor c0;
  if (rnn_detail::has_cell_state(cell)) c0 = states ? testing::rand_tensor({n, u}, seed + 30, -3.f, 3.f) : Tensor::zeros({n, u});
  const auto want = rnn_detail::onednn_rnn_forward(cell, x, w, h0, c0, false);
  const auto got = rnn_detail::small_batch_rnn_forward(cell, x, w, h0, c0, way.threads, way.split);
  const float tol = dtype == DType::f32 ? kF32Tolerance : kBf16Tolerance;
  EXPECT_EQ(got.y.dtype(), x.dtype());
  EXPECT_EQ(got.h.dtype(), x.dtype());
  EXPECT_LE(testing::max_abs_diff(got.y, want.y), tol);
  EXPECT_LE(testing::max_abs_diff(got.h, want.h), tol);
  if (c0.defined()) {
    EXPECT_LE(testing::max_abs_diff(got.c, want.c), tol * 4);  // c is not squashed
  }
}

// Rows: one, the 4-row (SimpleRNN 8-row) blocks with every tail, and splits that leave a
// thread a tail; units: within one vector, one, several with a partial last one, 128; ways:
// one thread, rows and units split over 2 and 3 threads (more threads than unit blocks too).
const int64_t kRowCounts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 17};
const int64_t kUnitCounts[] = {5, 16, 33, 128};
const Way kWays[] = {{1, SmallBatchSplit::rows},  {2, SmallBatchSplit::rows},  {3, SmallBatchSplit::rows},
                     {2, SmallBatchSplit::units}, {3, SmallBatchSplit::units}, {0, SmallBatchSplit::choose}};

TEST(RnnSmallBatch, MatchesOneDnnF32) {
  for (RnnCell cell : kCells) {
    for (int64_t n : kRowCounts) {
      for (int64_t u : kUnitCounts) {
        for (bool states : {false, true}) {
          for (Way way : kWays) expect_same_pass(cell, n, 5, 6, u, states, DType::f32, way);
        }
      }
    }
  }
}

// small_batch_rnn_run's own entry: states not given (null) start at zero, outputs not asked
// for (null) are not written and the rest still match.
TEST(RnnSmallBatch, NullStatesAndOutputs) {
  for (RnnCell cell : kCells) {
    for (int64_t n : {1, 6}) {
      for (Way way : {Way{1, SmallBatchSplit::rows}, Way{2, SmallBatchSplit::rows}, Way{2, SmallBatchSplit::units}}) {
        SCOPED_TRACE(std::string(rnn_detail::cell_name(cell)) + " n=" + std::to_string(n) + " " + describe(way));
        constexpr int64_t kT = 4, kIn = 3, kU = 20;
        const Tensor x = testing::rand_tensor({n, kT, kIn}, 3 + n, -2.f, 2.f);
        const RnnWeights w = weights_of(cell, kIn, kU, DType::f32, 40);
        const bool lstm = rnn_detail::has_cell_state(cell);
        const auto want = rnn_detail::onednn_rnn_forward(cell, x, w, Tensor::zeros({n, kU}),
                                                         lstm ? Tensor::zeros({n, kU}) : Tensor(), false);
        const auto prepared = rnn_detail::prepare_small_batch_rnn(cell, w);
        Tensor y = Tensor::full({n, kT, kU}, 7.f), h = Tensor::full({n, kU}, 7.f), c = Tensor::full({n, kU}, 7.f);
        rnn_detail::small_batch_rnn_run(prepared, x.data<float>(), n, kT, nullptr, nullptr, y.data<float>(),
                                        h.data<float>(), lstm ? c.data<float>() : nullptr, way.threads, way.split);
        EXPECT_LE(testing::max_abs_diff(y, want.y), kF32Tolerance);
        EXPECT_LE(testing::max_abs_diff(h, want.h), kF32Tolerance);
        if (lstm) {
          EXPECT_LE(testing::max_abs_diff(c, want.c), 4 * kF32Tolerance);
        }
        // Only the final h asked for: y and c keep what they held.
        Tensor h_only = Tensor::zeros({n, kU});
        y = Tensor::full({n, kT, kU}, 7.f), c = Tensor::full({n, kU}, 7.f);
        rnn_detail::small_batch_rnn_run(prepared, x.data<float>(), n, kT, nullptr, nullptr, nullptr,
                                        h_only.data<float>(), nullptr, way.threads, way.split);
        EXPECT_LE(testing::max_abs_diff(h_only, want.h), kF32Tolerance);
        EXPECT_EQ(testing::max_abs_diff(y, Tensor::full({n, kT, kU}, 7.f)), 0.f);
        EXPECT_EQ(testing::max_abs_diff(c, Tensor::full({n, kU}, 7.f)), 0.f);
      }
    }
  }
}

TEST(RnnSmallBatch, OneStepAndLongSequences) {
  for (RnnCell cell : kCells) {
    expect_same_pass(cell, 2, 1, 3, 33, true, DType::f32, {1, SmallBatchSplit::rows});
    expect_same_pass(cell, 1, 60, 28, 20, true, DType::f32, {2, SmallBatchSplit::units});
    expect_same_pass(cell, 6, 60, 28, 20, true, DType::f32, {2, SmallBatchSplit::rows});
  }
}

TEST(RnnSmallBatch, MatchesOneDnnBf16) {
  // oneDNN runs bf16 natively only with avx512_core_bf16; elsewhere the ops cast bf16 data to
  // f32 before rnn_forward, so the primitive is not asked for bf16.
  if (!rnn_detail::native_bf16_rnn()) GTEST_SKIP() << "no avx512_core_bf16: the bf16 RNN is not oneDNN's here";
  for (RnnCell cell : kCells) {
    for (int64_t n : {1, 4}) {
      for (int64_t u : {5, 33}) expect_same_pass(cell, n, 6, 5, u, true, DType::bf16, {1, SmallBatchSplit::rows});
    }
  }
}

TEST(RnnSmallBatch, ChosenWhereItMeasuredFaster) {
  for (RnnCell cell : kCells) {
    EXPECT_TRUE(rnn_detail::small_batch_rnn_wins(cell, 1, 128));
    EXPECT_TRUE(rnn_detail::small_batch_rnn_wins(cell, 8, 128));
    EXPECT_FALSE(rnn_detail::small_batch_rnn_wins(cell, kLargeBatch, 128));
    EXPECT_FALSE(rnn_detail::small_batch_rnn_wins(cell, 1, 1024));
  }
  EXPECT_TRUE(rnn_detail::small_batch_rnn_wins(RnnCell::lstm, 32, 128));  // issue 22's batch 32
  EXPECT_TRUE(rnn_detail::small_batch_rnn_wins(RnnCell::gru, 256, 128));
  EXPECT_FALSE(rnn_detail::small_batch_rnn_wins(RnnCell::simple_rnn, 32, 128));
}

TEST(RnnSmallBatch, ThreadChoice) {
  const int max = omp_get_max_threads();
  const auto one = rnn_detail::small_batch_rnn_threads(RnnCell::lstm, 1, 28, 128);
  const auto many = rnn_detail::small_batch_rnn_threads(RnnCell::lstm, 64, 28, 128);
  EXPECT_EQ(many.threads, max);
  EXPECT_EQ(many.split, SmallBatchSplit::rows);
  EXPECT_EQ(one.threads, max);
  if (max > 1) {
    EXPECT_EQ(one.split, SmallBatchSplit::units);
  }
  // A SimpleRNN(128) row's step is too little work to meet at a barrier for: one thread a row.
  const auto simple = rnn_detail::small_batch_rnn_threads(RnnCell::simple_rnn, 2, 28, 128);
  EXPECT_EQ(simple.split, SmallBatchSplit::rows);
  EXPECT_EQ(simple.threads, std::min(max, 2));
  EXPECT_EQ(rnn_detail::small_batch_rnn_threads(RnnCell::simple_rnn, 1, 28, 128).threads, 1);
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    EXPECT_EQ(rnn_detail::small_batch_rnn_threads(RnnCell::lstm, 64, 28, 128).threads, 1);  // nested: one
  }
}

// The public ops at a batch that takes the kernel, row for row against a batch of the same
// rows (and more) that takes oneDNN's primitive.
constexpr int64_t kBig = kLargeBatch, kT = 6, kI = 4;

std::vector<Tensor> run_op(const std::string& cell, const Tensor& x, const std::vector<Tensor>& w, const Tensor& h0,
                           const Tensor& c0, const Tensor& mask, const RnnOptions& o) {
  if (cell == "lstm") return lstm(x, w[0], w[1], w[2], h0, c0, mask, o);
  if (cell == "gru") return gru(x, w[0], w[1], w[2], h0, mask, o);
  return simple_rnn(x, w[0], w[1], w[2], h0, mask, o);
}

Tensor first_rows(const Tensor& t, int64_t rows) { return slice(t, 0, 0, rows).clone_detached(); }

TEST(RnnSmallBatch, OpsMatchTheLargeBatchPath) {
  for (const std::string cell : {"lstm", "gru", "simple_rnn"}) {
    const RnnCell kind = cell == "lstm" ? RnnCell::lstm : cell == "gru" ? RnnCell::gru : RnnCell::simple_rnn;
    ASSERT_FALSE(rnn_detail::small_batch_rnn_wins(kind, kBig, 33));
    const int64_t u = 33, g = cell == "lstm" ? 4 : cell == "gru" ? 3 : 1;
    const Shape bias = cell == "lstm" ? Shape{4 * u} : cell == "gru" ? Shape{2, 3 * u} : Shape{u};
    const std::vector<Tensor> w{testing::rand_tensor({kI, g * u}, 1, -0.6f, 0.6f),
                                testing::rand_tensor({u, g * u}, 2, -0.6f, 0.6f), testing::rand_tensor(bias, 3)};
    const Tensor x = testing::rand_tensor({kBig, kT, kI}, 4, -2.f, 2.f);
    const Tensor h0 = testing::rand_tensor({kBig, u}, 5);
    const Tensor c0 = cell == "lstm" ? testing::rand_tensor({kBig, u}, 6) : Tensor();
    // Row 0 whole, row 1 padded after, row 2 padded before.
    std::vector<float> m(kBig * kT, 1.f);
    m[1 * kT + 4] = m[1 * kT + 5] = 0.f;
    m[2 * kT + 0] = 0.f;
    const Tensor mask = Tensor::from_vector(m, {kBig, kT});
    for (bool backwards : {false, true}) {
      for (bool masked : {false, true}) {
        for (int64_t n : {1, 3}) {
          SCOPED_TRACE(cell + " backwards=" + std::to_string(backwards) + " masked=" + std::to_string(masked) +
                       " n=" + std::to_string(n));
          const RnnOptions o{.go_backwards = backwards};
          const auto big = run_op(cell, x, w, h0, c0, masked ? mask : Tensor(), o);
          const auto small = run_op(cell, first_rows(x, n), w, first_rows(h0, n),
                                    c0.defined() ? first_rows(c0, n) : Tensor(),
                                    masked ? first_rows(mask, n) : Tensor(), o);
          ASSERT_EQ(big.size(), small.size());
          for (size_t k = 0; k < big.size(); ++k) {
            EXPECT_LE(testing::max_abs_diff(small[k], first_rows(big[k], n)), kF32Tolerance) << "output " << k;
          }
        }
      }
    }
  }
}

TEST(RnnSmallBatch, BadInputStillNamed) {
  const Tensor x = testing::rand_tensor({1, 3, 4}, 1);
  const Tensor k = testing::rand_tensor({4, 20}, 2), rk = testing::rand_tensor({5, 20}, 3);
  try {
    lstm(x, k, rk, testing::rand_tensor({19}, 4));
    FAIL() << "a wrong bias was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("bias must be [20]"), std::string::npos) << e.what();
  }
  try {
    lstm(x, k, testing::rand_tensor({4, 20}, 3), testing::rand_tensor({20}, 4));
    FAIL() << "a wrong recurrent kernel was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("recurrent_kernel must be [5, 20]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kiln
