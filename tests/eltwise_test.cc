#include <gtest/gtest.h>

#include <cmath>

#include "tensor/ops/ops.h"
#include "tensor/ops/registry.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using testing::expect_forward_matches;
using testing::expect_gradients_match;
using testing::rand_tensor;

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  float low, high;  // input range: keeps log/sqrt/pow in their domains and off kinks
};

const UnaryCase kCases[] = {
    {"relu", [](const Tensor& x) { return relu(x); }, [](double x) { return std::max(x, 0.0); }, -2, 2},
    {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.1f); },
     [](double x) { return x > 0 ? x : 0.1 * x; }, -2, 2},
    {"gelu_erf", [](const Tensor& x) { return gelu(x, false); }, ref::gelu_erf, -3, 3},
    {"gelu_tanh", [](const Tensor& x) { return gelu(x, true); }, ref::gelu_tanh, -3, 3},
    {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, [](double x) { return 1 / (1 + std::exp(-x)); }, -4, 4},
    {"tanh", [](const Tensor& x) { return tanh(x); }, [](double x) { return std::tanh(x); }, -3, 3},
    {"exp", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); }, -2, 2},
    {"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); }, 0.2f, 3},
    {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); }, 0.2f, 3},
    {"square", [](const Tensor& x) { return square(x); }, [](double x) { return x * x; }, -2, 2},
    {"abs", [](const Tensor& x) { return abs(x); }, [](double x) { return std::fabs(x); }, -2, 2},
    {"elu", [](const Tensor& x) { return elu(x, 1.0f); }, [](double x) { return x > 0 ? x : std::exp(x) - 1; }, -2, 2},
    {"softplus", [](const Tensor& x) { return softplus(x); }, [](double x) { return std::log1p(std::exp(x)); }, -4, 4},
    {"swish", [](const Tensor& x) { return swish(x); }, [](double x) { return x / (1 + std::exp(-x)); }, -3, 3},
    {"affine", [](const Tensor& x) { return affine(x, 2.5f, -1.f); }, [](double x) { return 2.5 * x - 1; }, -2, 2},
    {"clip", [](const Tensor& x) { return clip(x, -0.5f, 0.7f); },
     [](double x) { return std::min(std::max(x, -0.5), 0.7); }, -2, 2},
    {"pow", [](const Tensor& x) { return pow(x, 1.5f); }, [](double x) { return std::pow(x, 1.5); }, 0.2f, 3},
    {"relu6", [](const Tensor& x) { return relu6(x); }, [](double x) { return std::min(std::max(x, 0.0), 6.0); }, -2, 8},
    {"hard_sigmoid", [](const Tensor& x) { return hard_sigmoid(x); },
     [](double x) { return std::min(std::max(x + 3, 0.0), 6.0) / 6; }, -5, 5},
    {"hard_swish", [](const Tensor& x) { return hard_swish(x); },
     [](double x) { return x * std::min(std::max(x + 3, 0.0), 6.0) / 6; }, -5, 5},
    {"mish", [](const Tensor& x) { return mish(x); }, [](double x) { return x * std::tanh(std::log1p(std::exp(x))); },
     -4, 4},
};

class EltwiseTest : public ::testing::TestWithParam<UnaryCase> {};

TEST_P(EltwiseTest, ForwardF32AndBf16) {
  const UnaryCase& c = GetParam();
  auto f = [&](const std::vector<Tensor>& x) { return c.op(x[0]); };
  auto r = [&](const std::vector<ref::RefTensor>& x) { return ref::unary(x[0], c.ref); };
  Tensor x = rand_tensor({4, 37}, 11, c.low, c.high);
  expect_forward_matches(f, r, {x}, testing::kF32);
  expect_forward_matches(f, r, {x}, testing::kBf16, DType::bf16);
}

TEST_P(EltwiseTest, GradientMatchesFiniteDifferences) {
  const UnaryCase& c = GetParam();
  auto f = [&](const std::vector<Tensor>& x) { return c.op(x[0]); };
  auto r = [&](const std::vector<ref::RefTensor>& x) { return ref::unary(x[0], c.ref); };
  expect_gradients_match(f, r, {rand_tensor({3, 5}, 12, c.low, c.high)});
}

INSTANTIATE_TEST_SUITE_P(Ops, EltwiseTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Eltwise, BadInput) {
  EXPECT_THROW(relu(Tensor::zeros({2}, DType::s32)), std::invalid_argument);
  EXPECT_THROW(clip(Tensor::zeros({2}), 1.f, 0.f), std::invalid_argument);
  EXPECT_THROW(eltwise_backward(EltwiseKind::relu, Tensor::zeros({2}), Tensor::zeros({3})), std::invalid_argument);
}

// Keras 3's values at and around the kinks (keras.ops on the jax backend gives these; the
// middle of each range is exact in f32 too).
TEST(Eltwise, HardActivationsMatchKerasAtTheKinks) {
  Tensor x = Tensor::from_vector({-4.f, -3.f, -1.5f, 0.f, 1.5f, 3.f, 6.f, 7.f}, {8});
  EXPECT_EQ(relu6(x).to_vector(), (std::vector<float>{0, 0, 0, 0, 1.5f, 3, 6, 6}));
  EXPECT_EQ(hard_sigmoid(x).to_vector(), (std::vector<float>{0, 0, 0.25f, 0.5f, 0.75f, 1, 1, 1}));
  EXPECT_EQ(hard_swish(x).to_vector(), (std::vector<float>{0, 0, -0.375f, 0, 1.125f, 3, 6, 7}));
  std::vector<float> m = mish(x).to_vector();
  for (size_t i = 0; i < m.size(); ++i) {
    double v = x.to_vector()[i];
    EXPECT_NEAR(m[i], v * std::tanh(std::log1p(std::exp(v))), 2e-6) << v;
  }
}

TEST(Eltwise, HardActivationGradientsAreZeroOutsideTheirRamps) {
  for (EltwiseKind k : {EltwiseKind::relu6, EltwiseKind::hard_sigmoid, EltwiseKind::hard_swish}) {
    Tensor x = Tensor::from_vector({-5.f, 8.f, 1.f}, {3});
    Tensor g = eltwise_backward(k, Tensor::ones({3}), x);
    std::vector<float> v = g.to_vector();
    EXPECT_EQ(v[0], 0.f) << eltwise_name(k);
    EXPECT_EQ(v[1], k == EltwiseKind::relu6 || k == EltwiseKind::hard_sigmoid ? 0.f : 1.f) << eltwise_name(k);
    EXPECT_NEAR(v[2], k == EltwiseKind::relu6 ? 1.0 : k == EltwiseKind::hard_sigmoid ? 1.0 / 6 : 5.0 / 6, 1e-6)
        << eltwise_name(k);
  }
}

TEST(Eltwise, NewActivationsKeepNaN) {
  const float nan = std::nanf("");
  for (DType dt : {DType::f32, DType::bf16}) {
    Tensor x = cast(Tensor::from_vector({nan, -1.f, 2.f, nan}, {4}), dt);
    for (EltwiseKind k : {EltwiseKind::relu6, EltwiseKind::hard_sigmoid, EltwiseKind::hard_swish, EltwiseKind::mish}) {
      std::vector<float> y = eltwise(k, x).to_vector();
      EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[3])) << eltwise_name(k) << " " << dtype_name(dt);
      EXPECT_FALSE(std::isnan(y[1]) || std::isnan(y[2])) << eltwise_name(k) << " " << dtype_name(dt);
    }
  }
}

TEST(Eltwise, ParameterlessKindsRejectParameters) {
  for (EltwiseKind k : {EltwiseKind::relu6, EltwiseKind::hard_sigmoid, EltwiseKind::hard_swish, EltwiseKind::mish}) {
    EXPECT_THROW(eltwise(k, Tensor::zeros({2}), 1.f, 0.f), std::invalid_argument) << eltwise_name(k);
    EXPECT_THROW(eltwise(k, Tensor::zeros({2}), 0.f, 6.f), std::invalid_argument) << eltwise_name(k);
    // A graph node with parameters is refused where graphs enter (validation runs infer).
    ops::Attrs call = eltwise_attrs(k, 0.5f, 0.f);
    EXPECT_THROW(ops::infer_op(call, {ops::ValueType{DType::f32, {2}}}), std::invalid_argument) << eltwise_name(k);
    EXPECT_NO_THROW(ops::infer_op(eltwise_attrs(k, 0.f, 0.f), {ops::ValueType{DType::f32, {2}}})) << eltwise_name(k);
  }
}

}  // namespace
}  // namespace kiln
