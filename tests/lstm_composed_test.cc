// The composed LSTM (tensor/ops/lstm_composed.h), which LSTM training passes run, against
// oneDNN's LSTM primitives (LstmTrainingPath::primitive, what they ran before): outputs, final
// states and the gradients of x, kernel, recurrent_kernel, bias, h0 and c0 through the public
// op, f32 and bf16, batches 1, 3 and 32, units 5 and 33, inputs 3, 4 and 7 (so that I + U is
// odd as well as even), x brought in by separate and by merged GEMMs (LstmInputGemm), with
// initial states, masks (row groups), go_backwards, whole and split into row chunks; dx skipped
// when x wants none; and the error of the gate kernels' exp, sigmoid and tanh.
//
// Not bitwise: the composed GEMMs sum in another order than oneDNN's RNN kernel and the gate
// kernels' exp differs from oneDNN's in the last bits, so f32 agrees to 2e-6 of each result's
// scale. In bf16 the h states round to bf16 after every step, so one flipped rounding carries
// on: 1e-2.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/gradient_tape.h"
#include "tensor/ops/lstm_composed.h"
#include "tensor/ops/lstm_composed_pass.h"
#include "tensor/ops/ops.h"
#include "tensor/ops/rnn_primitive.h"
#include "tests/gradcheck.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

constexpr int64_t kT = 6, kI = 7;

struct Config {
  std::string name;
  bool states = false;
  bool backwards = false;
  bool zero_output = false;
  bool mask = false;
};

// Rows padded after, before and around their runs, some whole, some all padding.
Tensor make_mask(int64_t b) {
  std::vector<float> m(b * kT, 1.f);
  for (int64_t r = 0; r < b; ++r) {
    for (int64_t s = 0; s < kT; ++s) {
      const bool real = r % 5 == 0 ? true : r % 5 == 1 ? s < 4 : r % 5 == 2 ? s >= 2 : r % 5 == 3 ? false : s >= 1 && s < 5;
      m[r * kT + s] = real ? 1.f : 0.f;
    }
  }
  return Tensor::from_vector(m, {b, kT});
}

std::vector<Tensor> make_inputs(int64_t b, int64_t u, bool states, uint64_t seed, int64_t inputs = kI) {
  std::vector<Tensor> in{testing::rand_tensor({b, kT, inputs}, seed),
                         testing::rand_tensor({inputs, 4 * u}, seed + 1, -0.7f, 0.7f),
                         testing::rand_tensor({u, 4 * u}, seed + 2, -0.7f, 0.7f),
                         testing::rand_tensor({4 * u}, seed + 3, -0.5f, 0.5f)};
  if (states) {
    in.push_back(testing::rand_tensor({b, u}, seed + 4));
    in.push_back(testing::rand_tensor({b, u}, seed + 5));
  }
  return in;
}

// The op's outputs (sequence, h, c), then the gradient of a random projection of all of them
// with respect to every input (x's only when watch_x), all in f32.
std::vector<Tensor> outputs_and_gradients(const std::vector<Tensor>& in, const Config& c, DType dtype,
                                          bool watch_x = true) {
  RnnOptions o{.go_backwards = c.backwards, .zero_output_for_mask = c.zero_output};
  Tensor mask = c.mask ? make_mask(in[0].shape()[0]) : Tensor();
  GradientTape tape;
  std::vector<Tensor> x, wanted;
  for (size_t k = 0; k < in.size(); ++k) {
    if (k > 0 || watch_x) {
      tape.watch(in[k]);
      wanted.push_back(in[k]);
    }
    x.push_back(dtype == DType::f32 ? in[k] : cast(in[k], dtype));
  }
  const bool states = x.size() > 4;
  std::vector<Tensor> out = lstm(x[0], x[1], x[2], x[3], states ? x[4] : Tensor(), states ? x[5] : Tensor(), mask, o);
  return testing::outputs_then_projected_gradients(tape, out, wanted);
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

std::vector<DType> dtypes() {
  // bf16 runs the bf16 LSTM only where the CPU has it; elsewhere f32 on bf16 values (still compared).
  return {DType::f32, DType::bf16};
}

void expect_close(const std::vector<Tensor>& got, const std::vector<Tensor>& want, float tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < want.size(); ++k) {
    ASSERT_EQ(got[k].shape(), want[k].shape()) << "result " << k;
    const float scale = std::max(1.f, testing::max_abs_diff(want[k], Tensor::zeros(want[k].shape())));
    EXPECT_LE(testing::max_abs_diff(got[k], want[k]), tol * scale) << "result " << k;
  }
}

struct Size {
  int64_t batch, units, inputs;
};

class LstmComposed : public ::testing::TestWithParam<Size> {};

TEST_P(LstmComposed, MatchesThePrimitivesOutputsStatesAndEveryGradient) {
  const auto [b, u, i] = GetParam();
  uint64_t seed = 40 + b * 100 + u + (i == kI ? 0 : i * 1000);
  for (DType dtype : dtypes()) {
    const float tol = dtype == DType::f32 ? 2e-6f : 1e-2f;
    for (const Config& c : configs()) {
      for (int chunks : {1, 2}) {
        rnn_detail::ForceRowChunks split(chunks);
        const std::vector<Tensor> in = make_inputs(b, u, c.states, seed += 10, i);
        std::vector<Tensor> primitive;
        {
          rnn_detail::ForceLstmTrainingPath force(rnn_detail::LstmTrainingPath::primitive);
          primitive = outputs_and_gradients(in, c, dtype);
        }
        for (auto way : {rnn_detail::LstmInputGemm::separate, rnn_detail::LstmInputGemm::merged}) {
          SCOPED_TRACE(c.name + " " + dtype_name(dtype) + " b" + std::to_string(b) + " u" + std::to_string(u) + " i" +
                       std::to_string(i) + " chunks " + std::to_string(chunks) +
                       (way == rnn_detail::LstmInputGemm::merged ? " merged" : " separate"));
          rnn_detail::ForceLstmInputGemm force(way);
          const std::vector<Tensor> composed = outputs_and_gradients(in, c, dtype);
          ASSERT_EQ(composed.size(), c.states ? 9u : 7u);  // y, h, c; x, kernel, recurrent, bias[, h0, c0]
          expect_close(composed, primitive, tol);
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, LstmComposed,
                         ::testing::Values(Size{1, 5, kI}, Size{1, 33, kI}, Size{3, 5, kI}, Size{3, 33, kI},
                                           Size{32, 5, kI}, Size{32, 33, kI}, Size{3, 5, 4}, Size{32, 33, 4},
                                           Size{3, 33, 3}, Size{32, 5, 3}),
                         [](const auto& info) {
                           return "b" + std::to_string(info.param.batch) + "_u" + std::to_string(info.param.units) +
                                  "_i" + std::to_string(info.param.inputs);
                         });

TEST(LstmComposedPass, TrainingRunsComposedAndInferenceThePrimitive) {
  using rnn_detail::RnnCell;
  Tensor x = testing::rand_tensor({4, kT, kI}, 1), h0 = Tensor::zeros({4, 3}), c0 = Tensor::zeros({4, 3});
  rnn_detail::RnnWeights w{testing::rand_tensor({kI, 12}, 2), testing::rand_tensor({3, 12}, 3), Tensor::zeros({4, 3})};
  for (int chunks : {1, 2}) {
    rnn_detail::ForceRowChunks split(chunks);
    auto training = rnn_detail::rnn_forward(RnnCell::lstm, x, w, h0, c0, true);
    ASSERT_EQ(static_cast<int>(training.chunks.size()), chunks);
    for (const auto& chunk : training.chunks) {
      EXPECT_TRUE(chunk.composed);
      EXPECT_FALSE(chunk.workspace.defined());
    }
    auto inference = rnn_detail::rnn_forward(RnnCell::lstm, x, w, h0, c0, false);
    for (const auto& chunk : inference.chunks) EXPECT_FALSE(chunk.composed);
    // Without dx: none computed, the rest as with it.
    rnn_detail::RnnWeights dw_with{Tensor::zeros({kI, 12}), Tensor::zeros({3, 12}), Tensor::zeros({4, 3})};
    rnn_detail::RnnWeights dw_without{Tensor::zeros({kI, 12}), Tensor::zeros({3, 12}), Tensor::zeros({4, 3})};
    Tensor dy = testing::rand_tensor({4, kT, 3}, 5), dh = testing::rand_tensor({4, 3}, 6), dc = testing::rand_tensor({4, 3}, 7);
    auto with = rnn_detail::rnn_backward(RnnCell::lstm, x, w, h0, c0, training, dy, dh, dc, &dw_with, true);
    auto without = rnn_detail::rnn_backward(RnnCell::lstm, x, w, h0, c0, training, dy, dh, dc, &dw_without, false);
    EXPECT_TRUE(with.dx.defined());
    EXPECT_FALSE(without.dx.defined());
    EXPECT_TRUE(testing::bitwise_equal(with.dh0, without.dh0));
    EXPECT_TRUE(testing::bitwise_equal(with.dc0, without.dc0));
    EXPECT_TRUE(testing::bitwise_equal(dw_with.layer, dw_without.layer));
    EXPECT_TRUE(testing::bitwise_equal(dw_with.iter, dw_without.iter));
    EXPECT_TRUE(testing::bitwise_equal(dw_with.bias, dw_without.bias));
  }
}

TEST(LstmComposedPass, AnUnwatchedInputGetsTheSameWeightGradients) {
  for (auto way : {rnn_detail::LstmInputGemm::separate, rnn_detail::LstmInputGemm::merged})
  for (DType dtype : dtypes()) {
    rnn_detail::ForceLstmInputGemm force(way);
    const std::vector<Tensor> in = make_inputs(6, 9, true, 77);
    const Config c{"masked_states", true, false, false, true};
    std::vector<Tensor> all = outputs_and_gradients(in, c, dtype, true);
    std::vector<Tensor> no_x = outputs_and_gradients(in, c, dtype, false);
    ASSERT_EQ(no_x.size() + 1, all.size());
    for (size_t k = 0; k < 3; ++k) EXPECT_TRUE(testing::bitwise_equal(no_x[k], all[k])) << k;
    for (size_t k = 3; k < no_x.size(); ++k) EXPECT_TRUE(testing::bitwise_equal(no_x[k], all[k + 1])) << k;
  }
}

TEST(LstmComposedPass, MergesTheInputGemmFromBatch16) {
  const Tensor kernel = Tensor::zeros({kI, 12}), recurrent = Tensor::zeros({3, 12}), bias = Tensor::zeros({12});
  auto merged = [&](int64_t batch) {
    return rnn_detail::ComposedLstm(rnn_detail::LstmShape{batch, kT, kI, 3, DType::f32}, kernel, recurrent, bias, 1).merged();
  };
  EXPECT_FALSE(merged(1));
  EXPECT_FALSE(merged(15));
  EXPECT_TRUE(merged(16));
  EXPECT_TRUE(merged(128));
  rnn_detail::ForceLstmInputGemm force(rnn_detail::LstmInputGemm::merged);
  EXPECT_TRUE(merged(1));
}

}  // namespace
}  // namespace kiln
