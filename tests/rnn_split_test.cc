// The RNN primitive's row split (tensor/ops/rnn_primitive.h: row_chunks, ForceRowChunks): a
// pass run as 2 or 3 concurrent row chunks against the same pass unsplit, through the public
// ops and their gradients, for LSTM, GRU and SimpleRNN in f32 and bf16, with initial states,
// go_backwards and masks (whose row groups are split in turn); and the rule that picks the
// chunk count (one per thread and at least a row each; never split with 1 thread or inside a
// parallel region).
//
// Not bitwise: each chunk's weight gradients are summed separately and then added (a different
// order of the batch sum), and oneDNN's GEMMs may block a chunk's rows differently from the
// whole batch's, so f32 results agree to rounding (1e-5 here). In bf16 the states round to
// bf16 after every step, so a last-bit difference can flip one rounding and carry on: 2e-2.
#include <gtest/gtest.h>
#include <omp.h>

#include <string>
#include <vector>

#include "autograd/gradient_tape.h"
#include "tensor/ops/ops.h"
#include "tensor/ops/rnn_primitive.h"
#include "tests/gradcheck.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

constexpr int64_t kB = 13, kT = 6, kI = 5, kU = 8;  // 13 rows: chunks of 7 + 6 and 5 + 4 + 4

struct Config {
  std::string name;
  bool states = false;
  bool backwards = false;
  bool zero_output = false;
  bool mask = false;
};

int gates_of(const std::string& cell) { return cell == "lstm" ? 4 : cell == "gru" ? 3 : 1; }

Shape bias_shape(const std::string& cell) {
  if (cell == "lstm") return {4 * kU};
  if (cell == "gru") return {2, 3 * kU};
  return {kU};
}

// Rows padded after, before and around their runs, some whole, one all padding: four groups.
Tensor make_mask() {
  std::vector<float> m(kB * kT, 1.f);
  for (int64_t r = 0; r < kB; ++r) {
    for (int64_t s = 0; s < kT; ++s) {
      const bool real = r % 4 == 0 ? true : r % 4 == 1 ? s < 4 : r % 4 == 2 ? s >= 2 : r == 3 ? false : s >= 1 && s < 5;
      m[r * kT + s] = real ? 1.f : 0.f;
    }
  }
  return Tensor::from_vector(m, {kB, kT});
}

std::vector<Tensor> make_inputs(const std::string& cell, bool states, uint64_t seed) {
  const int g = gates_of(cell);
  std::vector<Tensor> in{testing::rand_tensor({kB, kT, kI}, seed),
                         testing::rand_tensor({kI, g * kU}, seed + 1, -0.7f, 0.7f),
                         testing::rand_tensor({kU, g * kU}, seed + 2, -0.7f, 0.7f),
                         testing::rand_tensor(bias_shape(cell), seed + 3, -0.5f, 0.5f)};
  if (states) in.push_back(testing::rand_tensor({kB, kU}, seed + 4));
  if (states && cell == "lstm") in.push_back(testing::rand_tensor({kB, kU}, seed + 5));
  return in;
}

// Every output of the op in dtype, then the gradient of a random projection of all of them
// with respect to every input: all in f32.
std::vector<Tensor> outputs_and_gradients(const std::string& cell, const std::vector<Tensor>& in, const Config& c,
                                          DType dtype) {
  RnnOptions o{.go_backwards = c.backwards, .zero_output_for_mask = c.zero_output};
  Tensor mask = c.mask ? make_mask() : Tensor();
  GradientTape tape;
  std::vector<Tensor> x;
  for (const Tensor& t : in) {
    tape.watch(t);
    x.push_back(dtype == DType::f32 ? t : cast(t, dtype));
  }
  Tensor h0 = x.size() > 4 ? x[4] : Tensor();
  std::vector<Tensor> out = cell == "lstm" ? lstm(x[0], x[1], x[2], x[3], h0, x.size() > 5 ? x[5] : Tensor(), mask, o)
                            : cell == "gru" ? gru(x[0], x[1], x[2], x[3], h0, mask, o)
                                            : simple_rnn(x[0], x[1], x[2], x[3], h0, mask, o);
  return testing::outputs_then_projected_gradients(tape, out, in);
}

const std::vector<Config>& configs() {
  static const std::vector<Config> all{
      {"plain"},
      {"states_backwards", true, true},
      {"masked_states", true, false, false, true},
      {"masked_zero_output_backwards", false, true, true, true},
  };
  return all;
}

class RnnSplit : public ::testing::TestWithParam<std::string> {};

TEST_P(RnnSplit, SplitRowsMatchTheUnsplitPassAndItsGradients) {
  const std::string cell = GetParam();
  uint64_t seed = 30;
  for (DType dtype : {DType::f32, DType::bf16}) {
    const float tol = dtype == DType::f32 ? 1e-5f : 2e-2f;
    for (const Config& c : configs()) {
      std::vector<Tensor> in = make_inputs(cell, c.states, seed += 10);
      std::vector<Tensor> whole;
      {
        rnn_detail::ForceRowChunks unsplit(1);
        whole = outputs_and_gradients(cell, in, c, dtype);
      }
      for (int chunks : {2, 3}) {
        SCOPED_TRACE(cell + " " + c.name + " " + dtype_name(dtype) + " chunks " + std::to_string(chunks));
        rnn_detail::ForceRowChunks split(chunks);
        std::vector<Tensor> parts = outputs_and_gradients(cell, in, c, dtype);
        ASSERT_EQ(parts.size(), whole.size());
        for (size_t k = 0; k < whole.size(); ++k) {
          ASSERT_EQ(parts[k].shape(), whole[k].shape()) << "result " << k;
          const float scale = std::max(1.f, testing::max_abs_diff(whole[k], Tensor::zeros(whole[k].shape())));
          EXPECT_LE(testing::max_abs_diff(parts[k], whole[k]), tol * scale) << "result " << k;
        }
        // Deterministic: the same split twice is bitwise the same.
        std::vector<Tensor> again = outputs_and_gradients(cell, in, c, dtype);
        for (size_t k = 0; k < parts.size(); ++k) EXPECT_TRUE(testing::bitwise_equal(parts[k], again[k])) << k;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cells, RnnSplit, ::testing::Values("lstm", "gru", "simple_rnn"));

TEST(RnnSplitRule, OneChunkPerThreadButNeverWithOneThreadOrInsideAParallelRegion) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  EXPECT_EQ(rnn_detail::row_chunks(256), 1);
  omp_set_num_threads(2);
  EXPECT_EQ(rnn_detail::row_chunks(256), 2);
  EXPECT_EQ(rnn_detail::row_chunks(2), 2);
  EXPECT_EQ(rnn_detail::row_chunks(1), 1);
  omp_set_num_threads(3);
  EXPECT_EQ(rnn_detail::row_chunks(2), 2);  // never an empty chunk
  int inside = 0;
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    inside = omp_in_parallel() ? rnn_detail::row_chunks(256) : -1;
  }
  if (inside != -1) EXPECT_EQ(inside, 1);  // -1: the runtime gave the region one thread
  omp_set_num_threads(threads);
}

TEST(RnnSplitRule, AForcedCountSplitsThePassIntoThatManyChunksOfWholeRows) {
  using rnn_detail::RnnCell;
  Tensor x = testing::rand_tensor({kB, kT, kI}, 1), h0 = Tensor::zeros({kB, kU}), c0 = Tensor::zeros({kB, kU});
  rnn_detail::RnnWeights w{testing::rand_tensor({kI, 4 * kU}, 2), testing::rand_tensor({kU, 4 * kU}, 3),
                           Tensor::zeros({4, kU})};
  for (int chunks : {1, 2, 3, 40}) {
    rnn_detail::ForceRowChunks force(chunks);
    auto pass = rnn_detail::rnn_forward(RnnCell::lstm, x, w, h0, c0, true);
    ASSERT_EQ(static_cast<int64_t>(pass.chunks.size()), std::min<int64_t>(chunks, kB));
    int64_t next = 0;
    for (const auto& chunk : pass.chunks) {
      EXPECT_EQ(chunk.begin, next);
      EXPECT_GT(chunk.end, chunk.begin);
      EXPECT_LE(chunk.end - chunk.begin, kB / std::min<int64_t>(chunks, kB) + 1);
      next = chunk.end;
    }
    EXPECT_EQ(next, kB);
  }
}

}  // namespace
}  // namespace kiln
