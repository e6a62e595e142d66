// Every fixed-size array and fixed limit that user input can reach, at the limit and one past
// it: each either grows (the call past the old limit works) or throws an error that states the
// limit. Concat of any count: shape_ops_test; predict over any number of batches:
// predict_batches_test.
#include <gtest/gtest.h>

#include <oneapi/dnnl/dnnl.hpp>
#include <cmath>
#include <string>
#include <unordered_map>

#include "graph/graph_io.h"
#include "graph/trace.h"
#include "kiln.h"
#include "nn/checkpoint.h"
#include "tensor/onednn/engine.h"
#include "tests/gradcheck.h"
#include "tests/reference.h"

namespace kiln {
namespace {

using testing::rand_tensor;

void expect_message(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

Shape ones(int rank) { return Shape(rank, 1); }

// onednn::execute gathered a primitive's arguments in a 16-entry stack array and refused a
// 16th (concat of 15 inputs was the most); past that they move to the heap.
TEST(Limits, PrimitiveArgumentsAnyCount) {
  for (int sources : {14, 15, 16, 40}) {
    SCOPED_TRACE(std::to_string(sources) + " sources");
    dnnl::memory::desc md({2, 3}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
    std::vector<dnnl::memory::desc> mds(sources, md);
    std::vector<float> scales(sources, 1.f);
    dnnl::sum prim(dnnl::sum::primitive_desc(md, scales, mds, onednn::cpu_engine(), onednn::default_attr()));
    std::vector<Tensor> xs;
    std::unordered_map<int, dnnl::memory> args;
    for (int i = 0; i < sources; ++i) {
      xs.push_back(Tensor::full({2, 3}, static_cast<float>(i + 1)));
      args[DNNL_ARG_MULTIPLE_SRC + i] = onednn::memory_of(xs.back());
    }
    Tensor out = Tensor::empty({2, 3});
    args[DNNL_ARG_DST] = onednn::memory_of(out);
    onednn::execute("sum", prim, args);
    EXPECT_EQ(out.to_vector(), std::vector<float>(6, sources * (sources + 1) / 2.f));
  }
}

// oneDNN describes at most DNNL_MAX_NDIMS (12) dimensions: ops it runs take rank 12, and rank
// 13 is refused with that limit in the message.
TEST(Limits, OnednnRankIsTwelveAndSaysSo) {
  ASSERT_EQ(DNNL_MAX_NDIMS, 12);
  Shape at{2, 1, 3, 1, 1, 2, 1, 1, 1, 1, 1, 2};
  Tensor x = rand_tensor(at, 1), y = rand_tensor(at, 2);
  std::vector<float> xv = x.to_vector(), yv = y.to_vector(), sum = (x + y).to_vector();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_FLOAT_EQ(sum[i], xv[i] + yv[i]);
  Tensor softmax_12 = softmax(x, -1);  // over the last axis: pairs
  std::vector<float> sm = softmax_12.to_vector();
  for (size_t i = 0; i < xv.size(); i += 2) EXPECT_NEAR(sm[i], 1 / (1 + std::exp(xv[i + 1] - xv[i])), 1e-6);
  Shape past = at;
  past.push_back(1);
  Tensor big = rand_tensor(past, 3);
  // Ops that run on oneDNN say so...
  expect_message([&] { (void)(big + big); }, {"at most 12", shape_str(past)});
  expect_message([&] { (void)softmax(big, -1); }, {"at most 12", big.describe()});
  expect_message([&] { (void)cast(big, DType::bf16); }, {"at most 12"});
  // ...and those with loops of Kiln's own (or that fold the axes first) take any rank.
  std::vector<float> bv = big.to_vector(), relu_v = relu(big).to_vector(), twice = (big * 2.f).to_vector();
  for (size_t i = 0; i < bv.size(); ++i) {
    EXPECT_EQ(relu_v[i], std::max(bv[i], 0.f));
    EXPECT_EQ(twice[i], bv[i] * 2.f);
  }
  EXPECT_NEAR(reduce_sum(big, {}, false).item(), [&] {
    double s = 0;
    for (float v : bv) s += v;
    return s;
  }(), 1e-4);

}

// permute keeps its axes in a 64-entry array and a 64-bit mask.
TEST(Limits, PermuteRankIsSixtyFourAndSaysSo) {
  std::vector<int> perm(64);
  for (int i = 0; i < 64; ++i) perm[i] = 63 - i;
  Shape s = ones(64);
  s[0] = 2;
  s[63] = 3;
  Tensor p = permute(rand_tensor(s, 4), perm);
  EXPECT_EQ(p.shape()[0], 3);
  EXPECT_EQ(p.shape()[63], 2);
  perm.push_back(64);
  expect_message([&] { permute(Tensor::zeros(ones(65)), perm); }, {"rank above 64", "f32["});
}

// Checkpoints and graph files store ranks of at most 8 (the readers refuse more): the writers
// refuse them too, naming the entry, instead of writing a file that cannot be read back.
TEST(Limits, SavedFilesHoldRankEightAndSaySo) {
  Tensor rank8 = rand_tensor(ones(8), 5);
  nn::NamedTensors entries = nn::parse_checkpoint(nn::serialize_checkpoint({{"w", rank8}}), "memory");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].second.shape(), ones(8));
  expect_message([] { nn::serialize_checkpoint({{"deep", Tensor::zeros(ones(9))}}); },
                 {"'deep'", "rank 9", "at most 8"});

  auto add_one = [](const std::vector<Tensor>& x) { return std::vector<Tensor>{x[0] + 1.f}; };
  graph::Graph g8 = graph::trace(add_one, {rand_tensor(ones(8), 6)});
  EXPECT_EQ(graph::parse_graph(graph::serialize_graph(g8), "memory").values.size(), g8.values.size());
  graph::Graph g9 = graph::trace(add_one, {rand_tensor(ones(9), 7)});
  expect_message([&] { graph::serialize_graph(g9); }, {"rank 9", "at most 8"});
}

// Optimizers kept at most four slots per variable in a fixed array; a user's optimizer may
// keep any number.
class ManySlots : public optim::Optimizer {
 public:
  explicit ManySlots(int slots)
      : Optimizer("ManySlots", {.schedule = optim::resolve_schedule("ManySlots", 0.01f, nullptr, 0.01f)}),
        slots_(slots) {}
  std::unique_ptr<optim::Optimizer> clone() const override { return std::make_unique<ManySlots>(slots_); }

 protected:
  std::vector<std::string> slot_names() const override {
    std::vector<std::string> names;
    for (int k = 0; k < slots_; ++k) names.push_back("s" + std::to_string(k));
    return names;
  }
  // Slot k accumulates (k + 1) * g; the weight steps by the last slot.
  void update(float* w, const float* g, float* const* slots, int64_t n, float lr, int64_t) override {
    for (int k = 0; k < slots_; ++k) {
      for (int64_t i = 0; i < n; ++i) slots[k][i] += (k + 1) * g[i];
    }
    for (int64_t i = 0; i < n; ++i) w[i] -= lr * slots[slots_ - 1][i];
  }

 private:
  int slots_;
};

TEST(Limits, OptimizerSlotsAnyCount) {
  for (int count : {4, 5, 12}) {
    SCOPED_TRACE(std::to_string(count) + " slots");
    ManySlots opt(count);
    // Large enough that the update is split over threads.
    Variable v(Tensor::zeros({300000}), "v");
    Tensor g = Tensor::full({300000}, 0.5f);
    opt.apply_gradients({g}, {v});
    opt.apply_gradients({g}, {v});
    std::vector<std::pair<std::string, Tensor>> state = opt.slot_state({v});
    ASSERT_EQ(state.size(), static_cast<size_t>(count));
    for (int k = 0; k < count; ++k) {
      EXPECT_EQ(state[k].first, "v/s" + std::to_string(k));
      std::vector<float> s = state[k].second.to_vector();
      EXPECT_FLOAT_EQ(s.front(), 2 * 0.5f * (k + 1));
      EXPECT_FLOAT_EQ(s.back(), 2 * 0.5f * (k + 1));
    }
    // Two steps of lr 0.01, by 0.5 * count and then by 1.0 * count.
    EXPECT_NEAR(v.value().to_vector()[12345], -opt.learning_rate() * 1.5 * count, 1e-6);
  }
}

// Kiln's max pooling keeps each window's argmax in a byte, so it takes windows of at most 256
// cells; larger windows run on oneDNN's pooling, with the same values and gradients.
TEST(Limits, MaxPoolWindowsPastTwoHundredFiftySixCells) {
  for (std::array<int64_t, 2> window : {std::array<int64_t, 2>{16, 16}, std::array<int64_t, 2>{1, 257}}) {
    SCOPED_TRACE(std::to_string(window[0] * window[1]) + " cells");
    Pool2dAttrs o;
    o.pool_size = window;
    auto f = [o](const std::vector<Tensor>& x) { return max_pool2d(x[0], o); };
    auto r = [window](const std::vector<ref::RefTensor>& x) {
      return ref::max_pool2d(x[0], {.pool = window, .strides = window});
    };
    std::vector<Tensor> in{rand_tensor({1, window[0], window[1] + 1, 2}, 8)};  // and a column left over
    testing::expect_forward_matches(f, r, in, testing::kF32);
    testing::expect_gradients_match(f, r, in);
  }
}

}  // namespace
}  // namespace kiln
