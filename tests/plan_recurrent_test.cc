// The inference plan's recurrent step (runtime_export/plan/recurrent.cc): LSTM, GRU and
// SimpleRNN models at batches the small-batch kernel takes run as that step (no eager
// fallback) and match Model::call; initial states as model inputs; go_backwards, a batch
// beyond the kernel's and bf16 plans take the eager op and still match; bad input keeps the
// op's error.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kiln.h"
#include "runtime_export/inference_model.h"
#include "tensor/ops/rnn_small_batch.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using testing::max_abs_diff;

constexpr int64_t kSteps = 7, kFeatures = 5;
constexpr float kTolerance = 1e-5f;
// A batch the kernel leaves to oneDNN's primitive.
constexpr int64_t kLargeBatch = 300;

Layer cell_layer(const std::string& cell, int64_t units, const RecurrentOptions& o) {
  return cell == "lstm" ? LSTM(units, o) : cell == "gru" ? GRU(units, o) : SimpleRNN(units, o);
}

int count_of(const std::string& plan, const std::string& kind) {
  const std::string key = kind + ": ";
  const size_t at = plan.find(key);
  return at == std::string::npos ? 0 : std::stoi(plan.substr(at + key.size()));
}

TEST(PlanRecurrent, SmallBatchesRunTheKernelStep) {
  for (const std::string cell : {"lstm", "gru", "simple_rnn"}) {
    for (bool sequences : {false, true}) {
      set_global_seed(5);
      SymbolicTensor in = Input({kSteps, kFeatures});
      SymbolicTensor h = cell_layer(cell, 33, {.return_sequences = sequences})(in);
      auto model = std::make_shared<Model>(std::vector<SymbolicTensor>{in},
                                           std::vector<SymbolicTensor>{Dense(3)(h)}, "rnn");
      auto inference = runtime_export::trace(*model, random_uniform({2, kSteps, kFeatures}, -1.f, 1.f, 1));
      for (int64_t batch : std::vector<int64_t>{1, 3, 8, 16, 33, kLargeBatch}) {
        SCOPED_TRACE(cell + " sequences=" + std::to_string(sequences) + " batch=" + std::to_string(batch));
        const Tensor x = random_uniform({batch, kSteps, kFeatures}, -2.f, 2.f, 7 + batch);
        const std::string plan = inference->describe_plan({x.shape()});
        const rnn_detail::RnnCell kind = cell == "lstm" ? rnn_detail::RnnCell::lstm
                                         : cell == "gru"  ? rnn_detail::RnnCell::gru
                                                          : rnn_detail::RnnCell::simple_rnn;
        const bool kernel = rnn_detail::small_batch_rnn_wins(kind, batch, 33);
        ASSERT_EQ(kernel, batch <= 8 || (batch != kLargeBatch && kind != rnn_detail::RnnCell::simple_rnn));
        EXPECT_EQ(count_of(plan, "small-batch " + cell), kernel ? 1 : 0) << plan;
        EXPECT_EQ(count_of(plan, "eager " + cell), kernel ? 0 : 1) << plan;
        EXPECT_LE(max_abs_diff(inference->run(x), model->call({x}, false)[0]), kTolerance);
      }
    }
  }
}

TEST(PlanRecurrent, InitialStatesAsInputs) {
  set_global_seed(6);
  SymbolicTensor x = Input({kSteps, kFeatures}), h = Input({16}), c = Input({16});
  SymbolicTensor y = LSTM(16, {.return_sequences = true})({x, h, c});
  auto model = std::make_shared<Model>(std::vector<SymbolicTensor>{x, h, c}, std::vector<SymbolicTensor>{y}, "states");
  const std::vector<Tensor> in{random_uniform({2, kSteps, kFeatures}, -1.f, 1.f, 1),
                               random_uniform({2, 16}, -1.f, 1.f, 2), random_uniform({2, 16}, -1.f, 1.f, 3)};
  auto inference = runtime_export::trace(*model, in);
  EXPECT_EQ(count_of(inference->describe_plan({in[0].shape(), in[1].shape(), in[2].shape()}), "small-batch lstm"), 1);
  EXPECT_LE(max_abs_diff(inference->run(in)[0], model->call(in, false)[0]), kTolerance);
}

TEST(PlanRecurrent, BackwardsAndBf16TakeTheEagerOp) {
  set_global_seed(7);
  SymbolicTensor in = Input({kSteps, kFeatures});
  auto model = std::make_shared<Model>(std::vector<SymbolicTensor>{in},
                                       std::vector<SymbolicTensor>{GRU(9, {.go_backwards = true})(in)}, "back");
  const Tensor x = random_uniform({2, kSteps, kFeatures}, -1.f, 1.f, 1);
  auto inference = runtime_export::trace(*model, x);
  EXPECT_EQ(count_of(inference->describe_plan({x.shape()}), "eager gru"), 1);
  EXPECT_LE(max_abs_diff(inference->run(x), model->call({x}, false)[0]), kTolerance);
  auto bf16 = runtime_export::trace(*model, x, {.dtype = DType::bf16});
  EXPECT_EQ(count_of(bf16->describe_plan({x.shape()}), "small-batch gru"), 0);
  EXPECT_LE(max_abs_diff(cast(bf16->run(x), DType::f32), model->call({x}, false)[0]), 5e-2f);
}

TEST(PlanRecurrent, WrongFeaturesKeepTheOpsError) {
  set_global_seed(8);
  SymbolicTensor in = Input({kSteps, kFeatures});
  auto model = std::make_shared<Model>(std::vector<SymbolicTensor>{in}, std::vector<SymbolicTensor>{LSTM(4)(in)}, "bad");
  auto inference = runtime_export::trace(*model, random_uniform({1, kSteps, kFeatures}, -1.f, 1.f, 1));
  try {
    inference->run(random_uniform({1, kSteps, kFeatures + 1}, -1.f, 1.f, 2));
    FAIL() << "an input with the wrong feature count ran";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("expects f32[N, 7, 5]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kiln
