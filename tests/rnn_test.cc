// tensor/ops/rnn.h against the double step loop of Keras's cells (tests/rnn_reference.h):
// every output (sequence and final states) in f32 and bf16, finite-difference gradients of
// each, initial states, go_backwards, masks (padding after, before and around a sequence,
// all-padding rows, zero outputs) and the errors for what oneDNN cannot run.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tensor/onednn/isa.h"
#include "tensor/ops/ops.h"
#include "tensor/ops/rnn_primitive.h"
#include "tests/gradcheck.h"
#include "tests/rnn_reference.h"

namespace kiln {
namespace {

using ref::RefTensor;
using testing::Tolerance;

constexpr int64_t kB = 3, kT = 5, kI = 3, kU = 4;

struct Config {
  std::string name;
  bool states = false;
  bool backwards = false;
  bool zero_output = false;
  std::vector<float> mask;  // empty: none
};

int gates_of(const std::string& cell) { return cell == "lstm" ? 4 : cell == "gru" ? 3 : 1; }

Shape bias_shape(const std::string& cell) {
  if (cell == "lstm") return {4 * kU};
  if (cell == "gru") return {2, 3 * kU};
  return {kU};
}

// x, kernel, recurrent_kernel, bias[, h0[, c0]].
std::vector<Tensor> make_inputs(const std::string& cell, bool states, uint64_t seed) {
  const int g = gates_of(cell);
  std::vector<Tensor> in{testing::rand_tensor({kB, kT, kI}, seed), testing::rand_tensor({kI, g * kU}, seed + 1, -0.7f, 0.7f),
                         testing::rand_tensor({kU, g * kU}, seed + 2, -0.7f, 0.7f),
                         testing::rand_tensor(bias_shape(cell), seed + 3, -0.5f, 0.5f)};
  if (states) in.push_back(testing::rand_tensor({kB, kU}, seed + 4));
  if (states && cell == "lstm") in.push_back(testing::rand_tensor({kB, kU}, seed + 5));
  return in;
}

std::vector<Tensor> run_cell(const std::string& cell, const std::vector<Tensor>& in, const Config& c) {
  Tensor mask = c.mask.empty() ? Tensor() : Tensor::from_vector(c.mask, {kB, kT});
  RnnOptions o{.go_backwards = c.backwards, .zero_output_for_mask = c.zero_output};
  Tensor h0 = in.size() > 4 ? in[4] : Tensor();
  if (cell == "lstm") return lstm(in[0], in[1], in[2], in[3], h0, in.size() > 5 ? in[5] : Tensor(), mask, o);
  if (cell == "gru") return gru(in[0], in[1], in[2], in[3], h0, mask, o);
  return simple_rnn(in[0], in[1], in[2], in[3], h0, mask, o);
}

std::vector<RefTensor> run_ref(const std::string& cell, const std::vector<RefTensor>& in, const Config& c) {
  RefTensor mask{{kB, kT}, std::vector<double>(c.mask.begin(), c.mask.end())};
  ref::RnnRefOptions o{cell, c.backwards, c.zero_output};
  return ref::rnn(o, in[0], in[1], in[2], in[3], in.size() > 4 ? &in[4] : nullptr, in.size() > 5 ? &in[5] : nullptr,
                  c.mask.empty() ? nullptr : &mask);
}

const std::vector<Config>& configs() {
  static const std::vector<Config> all{
      {"plain"},
      {"states_backwards", true, true},
      {"padded_after", true, false, false, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0}},
      {"padded_around_backwards", true, true, false, {0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1}},
      {"padded_zero_output", false, false, true, {1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0}},
      {"padded_before_zero_output_backwards", true, true, true, {0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
  };
  return all;
}

class RnnOp : public ::testing::TestWithParam<std::string> {};

TEST_P(RnnOp, EveryOutputMatchesTheStepLoop) {
  const std::string cell = GetParam();
  const int outputs = cell == "lstm" ? 3 : 2;
  uint64_t seed = 10;
  for (const Config& c : configs()) {
    SCOPED_TRACE(cell + " " + c.name);
    std::vector<Tensor> in = make_inputs(cell, c.states, seed += 10);
    for (int o = 0; o < outputs; ++o) {
      SCOPED_TRACE("output " + std::to_string(o));
      auto f = [&](const std::vector<Tensor>& x) { return run_cell(cell, x, c)[o]; };
      auto r = [&](const std::vector<RefTensor>& x) { return run_ref(cell, x, c)[o]; };
      testing::expect_forward_matches(f, r, in, Tolerance{2e-5, 2e-4});
      testing::expect_forward_matches(f, r, in, Tolerance{4e-2, 4e-2}, DType::bf16);
      testing::expect_gradients_match(f, r, in, Tolerance{2e-3, 2e-3});
    }
  }
}

// bf16 x runs oneDNN's bf16 RNN where the CPU has avx512_core_bf16: its outputs against the
// f32 path on the same bf16 values, and its gradients (through the casts, so the inputs stay
// f32) against central differences of the double reference. bf16 keeps 8 significant bits
// and the states round to bf16 at every step, hence 5e-2.
TEST_P(RnnOp, Bf16RunsNativelyAndMatchesTheF32PathAndTheReference) {
  const std::string cell = GetParam();
  const int outputs = cell == "lstm" ? 3 : 2;
  uint64_t seed = 500;
  auto in_bf16 = [](const std::vector<Tensor>& x) {
    std::vector<Tensor> out;
    for (const Tensor& t : x) out.push_back(cast(t, DType::bf16));
    return out;
  };
  for (const Config& c : configs()) {
    SCOPED_TRACE(cell + " " + c.name);
    std::vector<Tensor> in = make_inputs(cell, c.states, seed += 10);
    cpu::clear_impl_log();
    std::vector<Tensor> native = run_cell(cell, in_bf16(in), c);
    if (rnn_detail::native_bf16_rnn()) {
      // Primitives are cached, so a repeated shape logs nothing: each one logged must be bf16.
      for (const auto& r : cpu::impl_log()) {
        if (r.op == "rnn_forward") {
          EXPECT_NE(r.key.find("bf16"), std::string::npos) << r.key;
        }
      }
    }
    std::vector<Tensor> rounded;  // the bf16 values in f32: the f32 path's inputs
    for (const Tensor& t : in_bf16(in)) rounded.push_back(cast(t, DType::f32));
    std::vector<Tensor> f32 = run_cell(cell, rounded, c);
    for (int o = 0; o < outputs; ++o) {
      SCOPED_TRACE("output " + std::to_string(o));
      EXPECT_EQ(native[o].dtype(), DType::bf16);
      std::vector<float> a = cast(native[o], DType::f32).to_vector(), b = f32[o].to_vector();
      ASSERT_EQ(a.size(), b.size());
      for (size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 3e-2 + 3e-2 * std::abs(b[k])) << k;
      auto f = [&](const std::vector<Tensor>& x) { return cast(run_cell(cell, in_bf16(x), c)[o], DType::f32); };
      auto r = [&](const std::vector<RefTensor>& x) { return run_ref(cell, x, c)[o]; };
      testing::expect_gradients_match(f, r, in, Tolerance{5e-2, 5e-2});
    }
  }
}

TEST_P(RnnOp, MasksOutsideOneRunPerRowAreRefused) {
  const std::string cell = GetParam();
  std::vector<Tensor> in = make_inputs(cell, false, 7);
  Config hole{"hole"};
  hole.mask = {1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1};
  try {
    run_cell(cell, in, hole);
    FAIL() << "a mask with a hole ran";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("mask row 1 is not one run of ones"), std::string::npos) << e.what();
  }
  Config half{"half"};
  half.mask.assign(kB * kT, 1.f);
  half.mask[4] = 0.5f;
  EXPECT_THROW(run_cell(cell, in, half), std::invalid_argument);
}

TEST_P(RnnOp, BadShapesNameTheInput) {
  const std::string cell = GetParam();
  std::vector<Tensor> in = make_inputs(cell, true, 3);
  auto expect_message = [&](std::vector<Tensor> bad, const std::string& what) {
    try {
      run_cell(cell, bad, Config{"bad"});
      FAIL() << "no error for " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  auto with = [&](size_t i, const Tensor& t) {
    std::vector<Tensor> v = in;
    v[i] = t;
    return v;
  };
  expect_message(with(0, Tensor::zeros({kB, kI})), "input must be [batch, time, features]");
  expect_message(with(1, Tensor::zeros({kI + 1, gates_of(cell) * kU})), "kernel must be");
  expect_message(with(2, Tensor::zeros({kU, kU + 1})), "recurrent_kernel must be");
  expect_message(with(3, Tensor::zeros({7})), "bias must be");
  expect_message(with(4, Tensor::zeros({kB + 1, kU})), "initial h must be");
  expect_message(with(0, Tensor::zeros({kB, kT, kI}, DType::s32)), "input must be f32 or bf16");
  if (cell == "lstm") {
    std::vector<Tensor> only_h(in.begin(), in.begin() + 5);
    expect_message(only_h, "both initial states");
  }
}

// Nothing to read: zero steps give the initial states, zero rows give empty outputs.
TEST_P(RnnOp, EmptySequencesAndBatches) {
  const std::string cell = GetParam();
  std::vector<Tensor> in = make_inputs(cell, true, 5);
  in[0] = Tensor::zeros({kB, 0, kI});
  std::vector<Tensor> out = run_cell(cell, in, Config{"empty"});
  EXPECT_EQ(out[0].shape(), (Shape{kB, 0, kU}));
  EXPECT_EQ(out[1].to_vector(), in[4].to_vector());
  std::vector<Tensor> none = make_inputs(cell, false, 5);
  none[0] = Tensor::zeros({0, kT, kI});
  EXPECT_EQ(run_cell(cell, none, Config{"none"})[0].shape(), (Shape{0, kT, kU}));
}

INSTANTIATE_TEST_SUITE_P(Cells, RnnOp, ::testing::Values("lstm", "gru", "simple_rnn"));

}  // namespace
}  // namespace kiln
