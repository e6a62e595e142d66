// Masks through Keras's merge layers (nn/layers/merge.h): values and masks against Keras
// 3.15.1 (tests/data/merge_masks/keras_reference.py prints the numbers below), the masks in a
// functional model, and a traced Concatenate whose unmasked input keeps the batch free.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "graph/trace.h"
#include "kiln.h"
#include "runtime_export/inference_model.h"
#include "tests/gradcheck.h"
#include "tests/onnx_round_trip.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using V = std::vector<float>;

// Two [2, 3, 2] inputs whose all-zero steps Masking(0) masks: a keeps steps {0, 2} and {2},
// b keeps {0, 1} and {0, 2}.
Tensor x1() { return Tensor::from_vector({1, 2, 0, 0, 3, -1, /**/ 0, 0, 0, 0, 5, 6}, {2, 3, 2}); }
Tensor x2() { return Tensor::from_vector({4, -2, 7, 8, 0, 0, /**/ 1, 1, 0, 0, -2, 9}, {2, 3, 2}); }
MaskedTensor masked(const Tensor& x) { return Masking(0.f).call_masked(MaskedTensor{x, Tensor()}); }

const V kBothMask = {1, 1, 1, 1, 0, 1};  // Keras: a's mask OR b's

struct MergeCase {
  const char* layer;
  Layer (*make)(const std::string&);
  V both, second_unmasked;  // Keras's values for [a, b] and [a, x2 without a mask]
};

TEST(MergeMasks, ValuesAndMasksMatchKeras) {
  const MergeCase cases[] = {
      {"Add", Add, {5, 0, 7, 8, 3, -1, 1, 1, 0, 0, 3, 15}, {5, 0, 7, 8, 3, -1, 1, 1, 0, 0, 3, 15}},
      {"Subtract", Subtract, {-3, 4, -7, -8, 3, -1, -1, -1, 0, 0, 7, -3}, {-3, 4, -7, -8, 3, -1, -1, -1, 0, 0, 7, -3}},
      {"Average", Average, {2.5, 0, 3.5, 4, 1.5, -0.5, 0.5, 0.5, 0, 0, 1.5, 7.5},
       {2.5, 0, 3.5, 4, 1.5, -0.5, 0.5, 0.5, 0, 0, 1.5, 7.5}},
      {"Maximum", Maximum, {4, 2, 7, 8, 3, -1, 1, 1, 0, 0, 5, 9}, {4, 2, 7, 8, 3, 0, 1, 1, 0, 0, 5, 9}},
      {"Minimum", Minimum, {1, -2, 7, 8, 3, -1, 1, 1, 0, 0, -2, 6}, {1, -2, 7, 8, 0, -1, 1, 1, 0, 0, -2, 6}},
      {"Multiply", Multiply, {4, -4, 7, 8, 3, -1, 1, 1, 0, 0, -10, 54}, {4, -4, 7, 8, 0, 0, 1, 1, 0, 0, -10, 54}},
  };
  MaskedTensor a = masked(x1()), b = masked(x2());
  ASSERT_EQ(a.mask.to_vector(), (V{1, 0, 1, 0, 0, 1}));
  ASSERT_EQ(b.mask.to_vector(), (V{1, 1, 0, 1, 0, 1}));
  for (const MergeCase& c : cases) {
    SCOPED_TRACE(c.layer);
    Layer layer = c.make("");
    MaskedTensor both = layer.call_masked({a, b});
    EXPECT_EQ(both.value.to_vector(), c.both);
    ASSERT_TRUE(both.mask.defined());
    EXPECT_EQ(both.mask.to_vector(), kBothMask);
    // One input without a mask: Keras gives no mask (and Maximum, Minimum and Multiply still
    // read the other's).
    MaskedTensor one = layer.call_masked({a, MaskedTensor{x2(), Tensor()}});
    EXPECT_EQ(one.value.to_vector(), c.second_unmasked);
    EXPECT_FALSE(one.mask.defined());
    // No masks at all: the plain merge.
    EXPECT_EQ(layer.call_masked({MaskedTensor{x1(), Tensor()}, MaskedTensor{x2(), Tensor()}}).value.to_vector(),
              layer({x1(), x2()}).to_vector());
  }
}

TEST(MergeMasks, ConcatenateJoinsMasksAsKeras) {
  MaskedTensor a = masked(x1()), b = masked(x2()), plain{x2(), Tensor()};
  // Along the features: the OR, and all kept when an input has no mask.
  EXPECT_EQ(Concatenate(-1).call_masked({a, b}).mask.to_vector(), kBothMask);
  EXPECT_EQ(Concatenate(-1).call_masked({a, plain}).mask.to_vector(), (V{1, 1, 1, 1, 1, 1}));
  // Along the steps: the masks joined, an unmasked input's steps all kept.
  MaskedTensor steps = Concatenate(1).call_masked({a, b});
  EXPECT_EQ(steps.value.shape(), (Shape{2, 6, 2}));
  EXPECT_EQ(steps.mask.to_vector(), (V{1, 0, 1, 1, 1, 0, /**/ 0, 0, 1, 1, 0, 1}));
  EXPECT_EQ(Concatenate(1).call_masked({a, plain}).mask.to_vector(), (V{1, 0, 1, 1, 1, 1, /**/ 0, 0, 1, 1, 1, 1}));
  EXPECT_FALSE(Concatenate(1).call_masked({MaskedTensor{x1(), Tensor()}, plain}).mask.defined());
  // Along the batch: the masks stacked.
  EXPECT_EQ(Concatenate(0).call_masked({a, plain}).mask.to_vector(), (V{1, 0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1}));
}

TEST(MergeMasks, MaskCountMustMatchInputs) {
  EXPECT_THROW(Add()->compute_mask({x1(), x2()}, {Tensor::ones({2, 3})}), std::invalid_argument);
  EXPECT_THROW(Concatenate()->compute_mask({x1(), x2()}, {Tensor::ones({2, 3})}), std::invalid_argument);
}

// Embedding(mask_zero) -> two branches -> Add / Concatenate -> masked mean: the mask crosses
// the merges in a functional model, and a traced graph keeps its batch free and matches.
TEST(MergeMasks, FlowThroughAFunctionalModelAndTrace) {
  set_global_seed(3);
  Layer embedding = Embedding(12, 4, {.mask_zero = true}), dense = Dense(4);
  SymbolicTensor in = Input({5}, DType::s32);
  SymbolicTensor e = embedding(in);
  SymbolicTensor sum = Add()({e, dense(e)});
  EXPECT_TRUE(sum.has_mask());
  // A second input without a mask: Concatenate along the steps keeps its steps.
  SymbolicTensor other = Input({3, 4});
  SymbolicTensor joined = Concatenate(1)({sum, other});
  EXPECT_TRUE(joined.has_mask());
  SymbolicTensor pooled = GlobalAveragePooling1D()(joined);
  auto model = std::make_shared<Model>(std::vector<SymbolicTensor>{in, other}, std::vector<SymbolicTensor>{pooled});
  Tensor ids = Tensor::from_int32({3, 4, 0, 0, 0, /**/ 1, 0, 0, 0, 0, /**/ 5, 6, 7, 8, 9}, {3, 5});
  Tensor extra = testing::rand_tensor({3, 3, 4}, 4);
  Tensor y = model->call({ids, extra}, false)[0];
  // The loop: the mean of [e + dense(e), other] over the kept steps (the non-zero ids and
  // all of `other`).
  Tensor ev = embedding(ids);
  std::vector<float> joined_v = concat({ev + dense(ev), extra}, 1).to_vector(), want;
  std::vector<int32_t> idv = ids.to_int32();
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t k = 0; k < 4; ++k) {
      double total = 0, kept = 0;
      for (int64_t t = 0; t < 8; ++t) {
        if (t < 5 && idv[r * 5 + t] == 0) continue;
        total += joined_v[(r * 8 + t) * 4 + k], kept += 1;
      }
      want.push_back(static_cast<float>(total / kept));
    }
  }
  EXPECT_LE(testing::max_abs_diff(y, Tensor::from_vector(want, {3, 4})), 1e-5f);
  graph::Graph g = graph::trace(*model, {slice(ids, 0, 0, 2), slice(extra, 0, 0, 2)});
  EXPECT_EQ(g.values[g.inputs[0]].shape[0], graph::kBatch) << "the traced graph fixed its batch";
  EXPECT_EQ(g.run({ids, extra})[0].to_vector(), y.to_vector());
  runtime_export::InferenceModel im(g);
  EXPECT_LE(testing::max_abs_diff(im.run({ids, extra})[0], y), 1e-5f);
  testing::expect_onnx_round_trip(g, {ids, extra}, "merge_masks");
}

}  // namespace
}  // namespace kiln
