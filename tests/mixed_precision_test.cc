#include <gtest/gtest.h>

#include <cmath>

#include "kiln.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using testing::rand_tensor;

struct PolicyGuard {
  explicit PolicyGuard(const std::string& p) { set_global_policy(p); }
  ~PolicyGuard() { set_global_policy("float32"); }
};

TEST(MixedPrecision, GlobalPolicyKeepsF32MasterWeightsAndComputesInBf16) {
  PolicyGuard guard("mixed_bfloat16");
  Layer dense = Dense(4, "relu");
  Tensor y = dense(rand_tensor({3, 5}, 1));
  EXPECT_EQ(y.dtype(), DType::bf16);
  for (const Variable& v : dense->variables()) EXPECT_EQ(v.dtype(), DType::f32);
  GradientTape tape;
  Tensor loss = reduce_sum(cast(dense(rand_tensor({3, 5}, 2)), DType::f32));
  auto grads = tape.gradient(loss, dense->trainable_variables());
  for (const Tensor& g : grads) {
    ASSERT_TRUE(g.defined());
    EXPECT_EQ(g.dtype(), DType::f32);
  }
}

TEST(MixedPrecision, PerLayerAndPerModelPolicies) {
  PolicyGuard guard("mixed_bfloat16");
  Sequential model({Dense(8, "relu"), Dense(3).with_policy("float32")});
  Tensor y = model(rand_tensor({2, 4}, 3));
  EXPECT_EQ(y.dtype(), DType::f32);  // the head runs in f32
  EXPECT_EQ(model.layers()[0]->policy().compute_dtype, DType::bf16);

  set_global_policy("float32");
  Sequential all({Conv2D(4, 3), Flatten(), Dense(2)});
  all.set_policy("mixed_bfloat16");
  EXPECT_EQ(all(rand_tensor({1, 5, 5, 2}, 4)).dtype(), DType::bf16);
  EXPECT_THROW(all.set_policy("float32"), std::logic_error);  // already built
  EXPECT_THROW(policy_from_name("mixed_float8"), std::invalid_argument);
}

TEST(MixedPrecision, ConvTakesF32MasterWeightsWithBf16Inputs) {
  Tensor x = cast(rand_tensor({2, 6, 6, 3}, 5), DType::bf16), w = rand_tensor({3, 3, 3, 4}, 6);
  Conv2dAttrs o;
  o.padding = Padding::same;
  Tensor direct = conv2d(x, w, Tensor(), o);
  Tensor via_cast = conv2d(x, cast(w, DType::bf16), Tensor(), o);
  EXPECT_EQ(direct.dtype(), DType::bf16);
  EXPECT_EQ(direct.to_vector(), via_cast.to_vector());  // same rounding of the weights
  GradientTape tape;
  tape.watch(w);
  Tensor loss = reduce_sum(cast(conv2d(x, w, Tensor(), o), DType::f32));
  Tensor gw = tape.gradient(loss, w);
  EXPECT_EQ(gw.dtype(), DType::f32);
  // d(sum)/dw = sum over positions of the input patch: compare with the f32 reference.
  ref::ConvParams p;
  p.same = true;
  auto rx = ref::from(x);
  auto base = ref::conv2d(rx, ref::from(w), nullptr, p);
  auto g = gw.to_vector();
  auto rw = ref::from(w);
  for (int64_t i = 0; i < rw.size(); i += 7) {
    auto bumped = rw;
    bumped.data[i] += 1.0;
    auto y2 = ref::conv2d(rx, bumped, nullptr, p);
    double d = 0;
    for (int64_t k = 0; k < y2.size(); ++k) d += y2.data[k] - base.data[k];
    EXPECT_NEAR(g[i], d, 0.05 + 0.01 * std::fabs(d));
  }
}

TEST(MixedPrecision, TrainingReducesTheLoss) {
  PolicyGuard guard("mixed_bfloat16");
  set_global_seed(3);
  Conv2DOptions same;
  same.padding = "same";
  Sequential model({Conv2D(8, 3, "relu", same), BatchNormalization(), GlobalAveragePooling2D(), Dense(3)});
  model.build({6, 6, 2});
  model.compile(optim::Adam(0.02f), SparseCategoricalCrossentropy(true), {"accuracy"});
  Tensor x = rand_tensor({48, 6, 6, 2}, 7);
  std::vector<int32_t> labels(48);
  std::vector<float> xv = x.to_vector();
  for (int i = 0; i < 48; ++i) labels[i] = xv[i * 72] > 0.33f ? 2 : (xv[i * 72] > -0.33f ? 1 : 0);
  auto ds = data::Dataset::from_tensor_slices(x, Tensor::from_int32(labels, {48})).batch(16);
  History h = model.fit(ds, {.epochs = 15, .verbose = 0});
  EXPECT_LT(h.history["loss"].back(), 0.7 * h.history["loss"].front());
  for (const Variable& v : model.variables()) EXPECT_EQ(v.dtype(), DType::f32);
}

}  // namespace
}  // namespace kiln
