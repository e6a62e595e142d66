#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "tensor/ops/op_attrs.h"
#include "tensor/ops/pool.h"
#include "autograd/gradient_tape.h"
#include "tensor/onednn/isa.h"
#include "tensor/ops/ops.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using testing::expect_forward_matches;
using testing::expect_gradients_match;
using testing::rand_tensor;

struct ConvCase {
  const char* name;
  Shape x, w;
  ref::ConvParams p;
  bool bias;
  bool fuse_relu = false;
};

Conv2dAttrs options_of(const ConvCase& c) {
  Conv2dAttrs o;
  o.strides = c.p.strides;
  o.padding = c.p.explicit_pads ? Padding::explicit_pads : c.p.same ? Padding::same : Padding::valid;
  o.pads = c.p.pads;
  o.dilation = c.p.dilation;
  o.groups = c.p.groups;
  o.activation = c.fuse_relu ? FusedActivation::relu : FusedActivation::none;
  return o;
}

const ConvCase kCases[] = {
    {"valid3x3", {2, 6, 7, 3}, {3, 3, 3, 4}, {}, true},
    {"same3x3", {2, 6, 7, 3}, {3, 3, 3, 4}, {{1, 1}, true}, true},
    {"stride2_same", {1, 7, 8, 2}, {3, 3, 2, 5}, {{2, 2}, true}, true},
    {"stride2_valid_nobias", {1, 7, 8, 2}, {3, 2, 2, 5}, {{2, 1}, false}, false},
    {"dilation2", {1, 8, 8, 2}, {3, 3, 2, 3}, {{1, 1}, true, {2, 2}}, true},
    {"groups2", {1, 5, 5, 4}, {3, 3, 2, 6}, {{1, 1}, true, {1, 1}, 2}, true},
    {"depthwise", {1, 5, 5, 3}, {3, 3, 1, 3}, {{1, 1}, true, {1, 1}, 3}, false},
    {"pointwise_relu", {2, 4, 4, 8}, {1, 1, 8, 16}, {}, true, true},
    // PyTorch padding / ONNX pads {top, left, bottom, right}: uneven, and wider than the kernel.
    {"explicit_uneven", {2, 6, 7, 3}, {3, 3, 3, 4}, {{1, 1}, false, {1, 1}, 1, true, {1, 0, 2, 1}}, true},
    {"explicit_stride2_dilated", {1, 7, 8, 2}, {3, 2, 2, 5}, {{2, 2}, false, {2, 1}, 1, true, {4, 1, 0, 3}}, false},
    {"explicit_depthwise", {1, 5, 5, 3}, {3, 3, 1, 6}, {{2, 1}, false, {1, 1}, 3, true, {0, 2, 1, 0}}, true},
};

class ConvTest : public ::testing::TestWithParam<ConvCase> {};

ref::RefTensor conv_ref(const ConvCase& c, const std::vector<ref::RefTensor>& x) {
  auto y = ref::conv2d(x[0], x[1], c.bias ? &x[2] : nullptr, c.p);
  if (c.fuse_relu) y = ref::unary(y, [](double v) { return std::max(v, 0.0); });
  return y;
}

TEST_P(ConvTest, ForwardF32AndBf16) {
  const ConvCase& c = GetParam();
  auto f = [&](const std::vector<Tensor>& x) { return conv2d(x[0], x[1], c.bias ? x[2] : Tensor(), options_of(c)); };
  auto r = [&](const std::vector<ref::RefTensor>& x) { return conv_ref(c, x); };
  std::vector<Tensor> in{rand_tensor(c.x, 1), rand_tensor(c.w, 2)};
  if (c.bias) in.push_back(rand_tensor({c.w[3]}, 3));
  expect_forward_matches(f, r, in, testing::kF32);
  expect_forward_matches(f, r, in, {6e-2, 3e-2}, DType::bf16);
}

TEST_P(ConvTest, GradientsMatchFiniteDifferences) {
  const ConvCase& c = GetParam();
  auto f = [&](const std::vector<Tensor>& x) { return conv2d(x[0], x[1], c.bias ? x[2] : Tensor(), options_of(c)); };
  auto r = [&](const std::vector<ref::RefTensor>& x) { return conv_ref(c, x); };
  std::vector<Tensor> in{rand_tensor(c.x, 4), rand_tensor(c.w, 5)};
  if (c.bias) in.push_back(rand_tensor({c.w[3]}, 6));
  expect_gradients_match(f, r, in);
}

INSTANTIATE_TEST_SUITE_P(Ops, ConvTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Conv, ReorderedWeightsFollowInPlaceUpdates) {
  Tensor x = rand_tensor({1, 5, 5, 8}, 7), w = rand_tensor({3, 3, 8, 16}, 8);
  Tensor y1 = conv2d(x, w, Tensor());
  w.copy_from(w * 2.f);  // in place, as an optimizer does: bumps the storage version
  Tensor y2 = conv2d(x, w, Tensor());
  auto a = y1.to_vector(), b = y2.to_vector();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], 2 * a[i], 1e-4 + 1e-4 * std::fabs(a[i]));
}

// depthwise_conv2d takes Keras's DepthwiseConv2D kernel [KH, KW, C, dm]: output channel
// c * dm + m reads input channel c, which is the grouped conv (groups = C) of the same buffer
// seen as [KH, KW, 1, C * dm] in the reference.
TEST(DepthwiseConv, MatchesTheReferenceForwardAndGradients) {
  struct Case {
    const char* name;
    Shape x, w;  // w: [KH, KW, C, dm]
    Conv2dAttrs attrs;
    bool bias;
  };
  const Case cases[] = {
      {"dm1_same", {2, 6, 7, 4}, {3, 3, 4, 1}, {.padding = Padding::same}, true},
      {"dm3_stride2_valid", {1, 7, 6, 2}, {3, 2, 2, 3}, {.strides = {2, 2}}, false},
      {"dm2_dilated_explicit", {1, 6, 6, 3}, {3, 3, 3, 2}, {.padding = Padding::explicit_pads, .pads = {2, 1, 0, 1}, .dilation = {2, 1}}, true},
      {"dm1_relu", {1, 5, 5, 8}, {3, 3, 8, 1}, {.padding = Padding::same, .activation = FusedActivation::relu}, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ref::ConvParams p{c.attrs.strides, c.attrs.padding == Padding::same, c.attrs.dilation, c.x[3],
                      c.attrs.padding == Padding::explicit_pads, c.attrs.pads};
    const Shape grouped{c.w[0], c.w[1], 1, c.w[2] * c.w[3]};
    auto f = [&](const std::vector<Tensor>& x) { return depthwise_conv2d(x[0], x[1], c.bias ? x[2] : Tensor(), c.attrs); };
    auto r = [&](const std::vector<ref::RefTensor>& x) {
      ref::RefTensor w = x[1];
      w.shape = grouped;
      ref::RefTensor y = ref::conv2d(x[0], w, c.bias ? &x[2] : nullptr, p);
      if (c.attrs.activation == FusedActivation::relu) y = ref::unary(y, [](double v) { return std::max(v, 0.0); });
      return y;
    };
    std::vector<Tensor> in{rand_tensor(c.x, 31), rand_tensor(c.w, 32)};
    if (c.bias) in.push_back(rand_tensor({c.w[2] * c.w[3]}, 33));
    expect_forward_matches(f, r, in, testing::kF32);
    expect_forward_matches(f, r, in, {6e-2, 3e-2}, DType::bf16);
    expect_gradients_match(f, r, in);
  }
  EXPECT_THROW(depthwise_conv2d(Tensor::zeros({1, 5, 5, 3}), Tensor::zeros({3, 3, 4, 1}), Tensor()), std::invalid_argument);
  EXPECT_THROW(depthwise_conv2d(Tensor::zeros({1, 5, 5, 4}), Tensor::zeros({3, 3, 4, 1}), Tensor(), {.groups = 2}),
               std::invalid_argument);
  EXPECT_THROW(depthwise_conv2d(Tensor::zeros({1, 5, 5, 4}), Tensor::zeros({3, 4, 1}), Tensor()), std::invalid_argument);
}

// With depth multiplier 1, oneDNN runs all three passes on its depthwise kernels (their names
// say "dw"), f32 and, where the CPU has AVX-512 BF16, bf16.
TEST(DepthwiseConv, RunsOnOneDnnDepthwiseKernels) {
  if (!cpu::isa_available(cpu::Isa::avx512_core)) GTEST_SKIP() << "checked on AVX-512 CPUs";
  std::vector<DType> dtypes{DType::f32};
  if (cpu::isa_available(cpu::Isa::avx512_core_bf16)) dtypes.push_back(DType::bf16);
  for (DType dt : dtypes) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor x = cast(rand_tensor({2, 12, 12, 32}, 41), dt), w = cast(rand_tensor({3, 3, 32, 1}, 42), dt);
    cpu::clear_impl_log();
    GradientTape tape;
    tape.watch(x);
    tape.watch(w);
    Tensor y = depthwise_conv2d(x, w, Tensor(), {.padding = Padding::same});
    tape.gradient(reduce_sum(y * y), {x, w});
    for (const char* op : {"conv2d", "conv2d_backward_data", "conv2d_backward_weights"}) {
      EXPECT_NE(cpu::last_impl(op).find("dw"), std::string::npos) << op << ": " << cpu::last_impl(op);
    }
  }
}

// set_conv_algorithm(winograd) for one test.
class WinogradScope {
 public:
  explicit WinogradScope(ConvAlgorithm algorithm = ConvAlgorithm::winograd) { set_conv_algorithm(algorithm); }
  ~WinogradScope() { set_conv_algorithm(ConvAlgorithm::direct); }
};

TEST(ConvWinograd, MatchesTheReferenceForwardAndGradients) {
  if (!cpu::isa_available(cpu::Isa::avx512_core)) GTEST_SKIP() << "oneDNN has Winograd kernels on AVX-512 only";
  WinogradScope winograd;
  const ConvCase cases[] = {
      {"same_bias_relu", {2, 9, 10, 16}, {3, 3, 16, 32}, {{1, 1}, true}, true, true},
      {"valid", {2, 8, 8, 32}, {3, 3, 32, 16}, {}, false},
  };
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto f = [&](const std::vector<Tensor>& x) { return conv2d(x[0], x[1], c.bias ? x[2] : Tensor(), options_of(c)); };
    auto r = [&](const std::vector<ref::RefTensor>& x) { return conv_ref(c, x); };
    std::vector<Tensor> in{rand_tensor(c.x, 11), rand_tensor(c.w, 12)};
    if (c.bias) in.push_back(rand_tensor({c.w[3]}, 13));
    cpu::clear_impl_log();
    expect_forward_matches(f, r, in, testing::kF32);
    EXPECT_NE(cpu::last_impl("conv2d").find("wino"), std::string::npos) << cpu::last_impl("conv2d");
    // Finite differences cost two reference convolutions per input element: a smaller batch.
    in[0] = rand_tensor({1, 5, 6, c.x[3]}, 14);
    expect_gradients_match(f, r, in);
    EXPECT_NE(cpu::last_impl("conv2d_backward_data").find("wino"), std::string::npos);
    EXPECT_NE(cpu::last_impl("conv2d_backward_weights").find("wino"), std::string::npos);
  }
}

// Shapes oneDNN has no Winograd kernel for (stride 2, 3 input channels, bf16) run direct.
TEST(ConvWinograd, FallsBackToDirectWhereThereIsNoWinogradKernel) {
  WinogradScope winograd;
  Tensor x = rand_tensor({2, 8, 8, 16}, 14), w = rand_tensor({3, 3, 16, 16}, 15);
  Conv2dAttrs stride2{.strides = {2, 2}, .padding = Padding::same};
  cpu::clear_impl_log();
  Tensor y = conv2d(x, w, Tensor(), stride2);
  EXPECT_EQ(cpu::last_impl("conv2d").find("wino"), std::string::npos) << cpu::last_impl("conv2d");
  EXPECT_EQ(y.shape(), (Shape{2, 4, 4, 16}));
  Tensor yb = conv2d(cast(x, DType::bf16), cast(w, DType::bf16), Tensor());
  EXPECT_EQ(cpu::last_impl("conv2d").find("wino"), std::string::npos) << cpu::last_impl("conv2d");
  EXPECT_EQ(yb.dtype(), DType::bf16);
}

// Winograd and direct training steps agree to rounding, and a packed kernel (kiln::optimize)
// gives the Winograd path the same results as an HWIO one.
TEST(ConvWinograd, AgreesWithDirectAndWithPackedKernels) {
  if (!cpu::isa_available(cpu::Isa::avx512_core)) GTEST_SKIP() << "oneDNN has Winograd kernels on AVX-512 only";
  Tensor x = rand_tensor({4, 12, 12, 32}, 16), w = rand_tensor({3, 3, 32, 32}, 17), b = rand_tensor({32}, 18);
  Conv2dAttrs same{.padding = Padding::same, .activation = FusedActivation::relu};
  auto run = [&](const Tensor& kernel) {
    Tensor xv = x, wv = kernel;
    GradientTape tape;
    tape.watch(xv);
    tape.watch(wv);
    Tensor y = conv2d(xv, wv, b, same);
    std::vector<Tensor> g = tape.gradient(reduce_sum(y * y), std::vector<Tensor>{xv, wv});
    return std::vector<std::vector<float>>{y.to_vector(), g[0].to_vector(), g[1].plain().to_vector()};
  };
  auto direct = run(w);
  std::vector<std::vector<float>> wino, wino_packed;
  {
    WinogradScope winograd;
    cpu::clear_impl_log();
    wino = run(w);
    for (const char* op : {"conv2d", "conv2d_backward_data", "conv2d_backward_weights"}) {
      EXPECT_NE(cpu::last_impl(op).find("wino"), std::string::npos) << op << ": " << cpu::last_impl(op);
    }
    wino_packed = run(pack_conv2d_kernel(w, x.shape(), same, DType::f32));
  }
  const char* names[] = {"output", "input gradient", "kernel gradient"};
  for (int k = 0; k < 3; ++k) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < direct[k].size(); ++i) {
      worst = std::max(worst, std::fabs(double(wino[k][i]) - direct[k][i]));
      scale = std::max(scale, std::fabs(double(direct[k][i])));
    }
    std::printf("Winograd against direct, %s: largest |difference| %.3g of values up to %.3g\n", names[k], worst,
                scale);
    EXPECT_LE(worst, 1e-5 * scale) << names[k] << ": Winograd against direct, largest |difference| " << worst
                                   << " of values up to " << scale;
    EXPECT_EQ(wino_packed[k], wino[k]) << names[k] << ": packed kernel against HWIO under Winograd";
  }
}

// fastest: the first call of each pass times both and keeps the faster; its outputs are the
// chosen algorithm's, and later calls repeat them exactly.
TEST(ConvWinograd, FastestKeepsOneAlgorithmPerPass) {
  Tensor x = rand_tensor({2, 10, 10, 32}, 19), w = rand_tensor({3, 3, 32, 32}, 20);
  auto run = [&] {
    Tensor xv = x, wv = w;
    GradientTape tape;
    tape.watch(xv);
    tape.watch(wv);
    Tensor y = conv2d(xv, wv, Tensor(), {.padding = Padding::same});
    std::vector<Tensor> g = tape.gradient(reduce_sum(y * y), std::vector<Tensor>{xv, wv});
    return std::vector<std::vector<float>>{y.to_vector(), g[0].to_vector(), g[1].to_vector()};
  };
  std::vector<std::vector<float>> direct = run(), winograd, first, second;
  {
    WinogradScope scope;
    winograd = run();
  }
  {
    WinogradScope scope(ConvAlgorithm::fastest);
    first = run();
    second = run();
  }
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(first[k], second[k]) << "pass " << k;
    EXPECT_TRUE(first[k] == direct[k] || first[k] == winograd[k]) << "pass " << k << " matches neither algorithm";
  }
}

TEST(ConvWinograd, AlgorithmNames) {
  EXPECT_EQ(conv_algorithm_from_name("fastest"), ConvAlgorithm::fastest);
  EXPECT_EQ(conv_algorithm_from_name("winograd"), ConvAlgorithm::winograd);
  EXPECT_EQ(conv_algorithm_from_name("direct"), ConvAlgorithm::direct);
  EXPECT_THROW(conv_algorithm_from_name("fft"), std::invalid_argument);
  EXPECT_EQ(conv_algorithm(), ConvAlgorithm::direct);
}

TEST(Conv, BadInputNamesShapes) {
  try {
    conv2d(Tensor::zeros({1, 5, 5, 3}), Tensor::zeros({3, 3, 4, 8}), Tensor());
    FAIL();
  } catch (const std::invalid_argument& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("[1, 5, 5, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[3, 3, 4, 8]"), std::string::npos) << m;
  }
  EXPECT_THROW(conv2d(Tensor::zeros({5, 5, 3}), Tensor::zeros({3, 3, 3, 8}), Tensor()), std::invalid_argument);
  EXPECT_THROW(conv2d(Tensor::zeros({1, 2, 2, 3}), Tensor::zeros({3, 3, 3, 8}), Tensor()), std::invalid_argument);
  EXPECT_THROW(conv2d(Tensor::zeros({1, 5, 5, 3}), Tensor::zeros({3, 3, 3, 8}), Tensor::zeros({7})),
               std::invalid_argument);
  Conv2dAttrs bad_groups;
  bad_groups.groups = 2;
  EXPECT_THROW(conv2d(Tensor::zeros({1, 5, 5, 3}), Tensor::zeros({3, 3, 1, 8}), Tensor(), bad_groups),
               std::invalid_argument);
  EXPECT_THROW(padding_from_name("full"), std::invalid_argument);
}

// Issue 26: a graph file's strides, dilations, pool windows and groups reached the spatial
// arithmetic unbounded (signed overflow in plan_spatial for strides[0] = 2^63-1). They are
// bounded first, and every error names the op and the values.
TEST(Conv, HugeGeometryIsRefusedBeforeAnyArithmetic) {
  const int64_t huge[] = {INT64_MAX, int64_t{1} << 62, kMaxSpatialExtent + 1};
  for (int64_t v : huge) {
    for (Padding p : {Padding::same, Padding::valid}) {
      EXPECT_THROW(plan_spatial(5, 3, v, 1, p, "conv2d", "x"), std::invalid_argument) << v;
      EXPECT_THROW(plan_spatial(5, 3, 1, v, p, "conv2d", "x"), std::invalid_argument) << v;
      EXPECT_THROW(plan_spatial(5, v, 1, 1, p, "conv2d", "x"), std::invalid_argument) << v;
      EXPECT_THROW(plan_spatial(v, 3, 1, 1, p, "conv2d", "x"), std::invalid_argument) << v;
    }
  }
  // A dilated span past the limit though each factor is under it.
  EXPECT_THROW(plan_spatial(5, 3, 1, kMaxSpatialExtent, Padding::same, "conv2d", "x"), std::invalid_argument);
  // Strides larger than the input are legal (Keras): one output, no overflow.
  SpatialPlan one = plan_spatial(5, 3, kMaxSpatialExtent, 1, Padding::same, "conv2d", "x");
  EXPECT_EQ(one.out, 1);
  EXPECT_EQ(one.pad_before + one.pad_after, 0);
  EXPECT_EQ(plan_spatial(5, 3, kMaxSpatialExtent, 1, Padding::valid, "conv2d", "x").out, 1);
  EXPECT_EQ(plan_spatial(7, 3, 2, 1, Padding::same, "conv2d", "x").out, 4);

  auto refused = [](const ops::Attrs& a, const std::string& fragment) {
    try {
      ops::parse_attrs<Conv2dAttrs>(a);
      ADD_FAILURE() << "accepted " << a.to_string();
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  ops::Attrs good = to_attrs(Conv2dAttrs{});
  refused(ops::Attrs(good).set("strides", std::vector<int64_t>{INT64_MAX, 1}), "'strides'");
  refused(ops::Attrs(good).set("strides", std::vector<int64_t>{1, 1, 1}), "'strides'");
  refused(ops::Attrs(good).set("dilation", std::vector<int64_t>{0, 1}), "'dilation'");
  refused(ops::Attrs(good).set("groups", ops::AttrValue(int64_t{1} << 62)), "'groups'");
  refused(ops::Attrs(good).set("groups", ops::AttrValue(int64_t{0})), "'groups'");
  ops::Attrs pool = to_attrs("max_pool2d", Pool2dAttrs{});
  EXPECT_EQ(ops::parse_attrs<Pool2dAttrs>(pool).strides[0], 0);  // 0: the pool size, as Keras
  EXPECT_THROW(ops::parse_attrs<Pool2dAttrs>(ops::Attrs(pool).set("pool_size", std::vector<int64_t>{INT64_MAX, 2})),
               std::invalid_argument);
  EXPECT_THROW(ops::parse_attrs<Pool2dAttrs>(ops::Attrs(pool).set("strides", std::vector<int64_t>{-1, 2})), std::invalid_argument);
  // Explicit pads: only with padding 'explicit', four of them, each in [0, 2^31 - 1].
  Conv2dAttrs padded;
  padded.padding = Padding::explicit_pads;
  padded.pads = {1, 2, 3, 4};
  ops::Attrs explicit_attrs = to_attrs(padded);
  EXPECT_EQ(ops::parse_attrs<Conv2dAttrs>(explicit_attrs).pads, (Pads2d{1, 2, 3, 4}));
  refused(ops::Attrs(explicit_attrs).set("pads", std::vector<int64_t>{1, 2, 3}), "'pads'");
  refused(ops::Attrs(explicit_attrs).set("pads", std::vector<int64_t>{1, -2, 3, 4}), "'pads'");
  refused(ops::Attrs(explicit_attrs).set("pads", std::vector<int64_t>{1, INT64_MAX, 3, 4}), "'pads'");
  refused(ops::Attrs(explicit_attrs).set("padding", "same"), "'pads'");
  refused(ops::Attrs(good).set("padding", "explicit"), "'pads' is missing");
  refused(ops::Attrs(good).set("padding", "full"), "'padding'");
  EXPECT_THROW(plan_spatial(5, 3, 1, 1, Padding::explicit_pads, "conv2d", "x", {-1, 0}), std::invalid_argument);
  EXPECT_THROW(plan_spatial(5, 3, 1, 1, Padding::explicit_pads, "conv2d", "x", {kMaxSpatialExtent, 1}),
               std::invalid_argument);
  EXPECT_EQ(plan_spatial(1, 7, 2, 1, Padding::explicit_pads, "conv2d", "x", {3, 3}).out, 1);
  EXPECT_THROW(plan_spatial(1, 7, 2, 1, Padding::explicit_pads, "conv2d", "x", {3, 2}), std::invalid_argument);
  Conv2dAttrs huge_groups;
  huge_groups.groups = int64_t{1} << 62;
  EXPECT_THROW(conv2d(Tensor::zeros({1, 5, 5, 4}), Tensor::zeros({3, 3, 1, 4}), Tensor(), huge_groups),
               std::invalid_argument);
}

}  // namespace
}  // namespace kiln
