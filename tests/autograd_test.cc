#include <gtest/gtest.h>

#include <memory>

#include "autograd/gradient_tape.h"
#include "autograd/variable.h"
#include "tensor/ops/ops.h"

namespace kiln {
namespace {

Tensor vec(std::vector<float> v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); }

TEST(GradientTape, WatchedTensorGetsGradient) {
  Tensor x = vec({1, 2, 3});
  GradientTape tape;
  tape.watch(x);
  Tensor y = reduce_sum(x * x);
  EXPECT_EQ(tape.gradient(y, x).to_vector(), (std::vector<float>{2, 4, 6}));
}

TEST(GradientTape, AddAndSubKeepOnlyShapesOfTheirInputs) {
  // Flashlight's withoutData: a recorded add/sub must not keep its (activation) inputs alive.
  Tensor w = Tensor::ones({3});
  GradientTape tape(/*persistent=*/true);
  tape.watch(w);
  std::weak_ptr<Storage> activation;
  Tensor y;
  {
    Tensor h = w * 2.f;  // stands for an activation only the add reads
    activation = h.storage();
    y = h + w - w;
  }
  EXPECT_TRUE(activation.expired());
  EXPECT_EQ(tape.gradient(reduce_sum(y), w).to_vector(), (std::vector<float>{2, 2, 2}));
}

TEST(GradientTape, UnwatchedTensorsAreNotRecorded) {
  Tensor x = vec({1, 2});
  GradientTape tape;
  Tensor y = reduce_sum(x * x);
  EXPECT_EQ(tape.num_recorded_ops(), 0u);
  EXPECT_FALSE(tape.gradient(y, x).defined());
}

TEST(GradientTape, TrainableVariablesAreWatchedAutomatically) {
  Variable w(vec({3}), "w");
  Variable frozen(vec({5}), "frozen", /*trainable=*/false);
  GradientTape tape;
  Tensor y = reduce_sum(w.value() * frozen.value());
  auto g = tape.gradient(y, std::vector<Variable>{w, frozen});
  EXPECT_EQ(g[0].to_vector(), (std::vector<float>{5}));
  EXPECT_FALSE(g[1].defined());

  GradientTape no_auto(/*persistent=*/false, /*watch_accessed_variables=*/false);
  Tensor z = reduce_sum(w.value() * 2.f);
  EXPECT_FALSE(no_auto.gradient(z, w.value()).defined());
}

TEST(GradientTape, ReusedTensorAccumulatesGradients) {
  Tensor x = vec({2});
  GradientTape tape;
  tape.watch(x);
  Tensor a = x * x;       // 2x
  Tensor b = a * x + x;   // 3x^2 + 1 in derivative (x^3 + x)
  Tensor c = b + a;       // + 2x
  EXPECT_FLOAT_EQ(tape.gradient(reduce_sum(c), x).item(), 3 * 4 + 1 + 2 * 2);
}

TEST(GradientTape, NonPersistentAnswersOnceAndReleasesGraph) {
  Tensor x = vec({1, 2, 3});
  std::weak_ptr<TensorImpl> saved;
  GradientTape tape;
  tape.watch(x);
  {
    Tensor h = exp(x);  // exp's backward keeps its output alive
    saved = h.impl_ptr();
    Tensor y = reduce_sum(h * 2.f);
    tape.gradient(y, x);
  }
  EXPECT_TRUE(saved.expired()) << "the tape kept an intermediate alive after gradient()";
  EXPECT_EQ(tape.num_recorded_ops(), 0u);
  EXPECT_THROW(tape.gradient(reduce_sum(x), x), std::runtime_error);
}

TEST(GradientTape, PersistentAnswersRepeatedly) {
  Tensor x = vec({1, 2});
  GradientTape tape(/*persistent=*/true);
  tape.watch(x);
  Tensor y = reduce_sum(x * x);
  Tensor z = reduce_sum(x * 3.f);
  EXPECT_EQ(tape.gradient(y, x).to_vector(), (std::vector<float>{2, 4}));
  EXPECT_EQ(tape.gradient(z, x).to_vector(), (std::vector<float>{3, 3}));
  EXPECT_EQ(tape.gradient(y, x).to_vector(), (std::vector<float>{2, 4}));
}

TEST(GradientTape, StopRecordingPausesTheTape) {
  Tensor x = vec({1, 2});
  GradientTape tape;
  tape.watch(x);
  Tensor y = x * 2.f;
  Tensor z;
  {
    auto pause = tape.stop_recording();
    z = y * y;  // not recorded: z is a constant to the tape
  }
  Tensor loss = reduce_sum(y + z);
  EXPECT_EQ(tape.gradient(loss, x).to_vector(), (std::vector<float>{2, 2}));
}

TEST(GradientTape, StopGradientBlocks) {
  Tensor x = vec({3});
  GradientTape tape;
  tape.watch(x);
  Tensor y = x * stop_gradient(x);
  EXPECT_FLOAT_EQ(tape.gradient(reduce_sum(y), x).item(), 3.f);
}

TEST(GradientTape, NestedTapesGiveSecondOrderGradients) {
  Tensor x = vec({2, 3});
  GradientTape outer;
  outer.watch(x);
  Tensor dy;
  {
    GradientTape inner;
    inner.watch(x);
    Tensor y = reduce_sum(x * x * x);  // y' = 3x^2, y'' = 6x
    dy = inner.gradient(y, x);
  }
  EXPECT_EQ(dy.to_vector(), (std::vector<float>{12, 27}));
  EXPECT_EQ(outer.gradient(reduce_sum(dy), x).to_vector(), (std::vector<float>{12, 18}));
}

TEST(GradientTape, SecondOrderThroughFusedBackwardIsAClearError) {
  Tensor x = vec({0.5f, -1.f});
  GradientTape outer;
  outer.watch(x);
  Tensor dy;
  {
    GradientTape inner;
    inner.watch(x);
    dy = inner.gradient(reduce_sum(tanh(x)), x);
  }
  EXPECT_THROW(outer.gradient(reduce_sum(dy), x), std::runtime_error);
}

TEST(GradientTape, UnconnectedAndOutputGradients) {
  Tensor x = vec({1, 2}), unrelated = vec({5});
  GradientTape tape(true);
  tape.watch(x);
  tape.watch(unrelated);
  Tensor y = x * 3.f;
  auto g = tape.gradient(y, {x, unrelated}, vec({1, 10}));
  EXPECT_EQ(g[0].to_vector(), (std::vector<float>{3, 30}));
  EXPECT_FALSE(g[1].defined());
  auto z = tape.gradient(y, {unrelated}, Tensor(), UnconnectedGradients::zero);
  EXPECT_EQ(z[0].to_vector(), (std::vector<float>{0}));
  EXPECT_THROW(tape.gradient(y, {x}, vec({1, 2, 3})), std::invalid_argument);
}

TEST(GradientTape, GradientOfNonScalarTargetSumsIt) {
  Tensor x = vec({1, 2});
  GradientTape tape;
  tape.watch(x);
  EXPECT_EQ(tape.gradient(x * x, x).to_vector(), (std::vector<float>{2, 4}));
}

TEST(GradientTape, BadWatchIsClear) {
  GradientTape tape;
  EXPECT_THROW(tape.watch(Tensor::zeros({2}, DType::s32)), std::invalid_argument);
  EXPECT_THROW(tape.watch(Tensor()), std::invalid_argument);
}

TEST(Variable, AssignInPlaceKeepsIdentity) {
  Variable v(vec({1, 2}), "v");
  uint64_t id = v.value().id();
  auto storage = v.value().storage();
  uint64_t version = storage->version();
  v.assign_sub(vec({0.5f, 0.5f}));
  EXPECT_EQ(v.value().id(), id);
  EXPECT_EQ(v.value().storage(), storage);
  EXPECT_GT(storage->version(), version);
  EXPECT_EQ(v.value().to_vector(), (std::vector<float>{0.5f, 1.5f}));
  v.assign_add(vec({1, 1}));
  EXPECT_EQ(v.value().to_vector(), (std::vector<float>{1.5f, 2.5f}));
  EXPECT_THROW(v.assign(vec({1, 2, 3})), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
