#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tensor/bf16.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace kiln {
namespace {

TEST(Bf16, RoundsToNearestEven) {
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1 + 2^-7: ties go to the even (1.0).
  EXPECT_EQ(bf16(1.0f + std::ldexp(1.0f, -8)).bits, bf16(1.0f).bits);
  // 1 + 3*2^-8 is halfway between 1+2^-7 (odd mantissa) and 1+2^-6: rounds up to even.
  EXPECT_EQ(static_cast<float>(bf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  // Just above halfway rounds up.
  EXPECT_EQ(static_cast<float>(bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20))), 1.0f + std::ldexp(1.0f, -7));
  EXPECT_EQ(static_cast<float>(bf16(-2.5f)), -2.5f);
  EXPECT_TRUE(std::isinf(static_cast<float>(bf16(std::numeric_limits<float>::infinity()))));
  EXPECT_TRUE(std::isnan(static_cast<float>(bf16(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload sits only in the low bits must not become infinity.
  uint32_t bits = 0x7f800001u;
  float snan;
  std::memcpy(&snan, &bits, 4);
  EXPECT_TRUE(std::isnan(static_cast<float>(bf16(snan))));
  // The largest finite float rounds to infinity, as IEEE rounding says.
  EXPECT_TRUE(std::isinf(static_cast<float>(bf16(std::numeric_limits<float>::max()))));
}

TEST(Tensor, FactoriesAndConversion) {
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.numel(), 6);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.strides(), (Strides{3, 1}));
  EXPECT_EQ(t.to_vector()[4], 5.f);
  Tensor b = Tensor::from_vector({1.5f, -300.f, 200.f}, {3}, DType::s8);
  EXPECT_EQ(b.to_vector(), (std::vector<float>{2.f, -128.f, 127.f}));  // rounds, saturates
  Tensor u = Tensor::from_vector({-3.f, 300.f}, {2}, DType::u8);
  EXPECT_EQ(u.to_vector(), (std::vector<float>{0.f, 255.f}));
  EXPECT_EQ(Tensor::full({2}, 3.f, DType::bf16).to_vector(), (std::vector<float>{3.f, 3.f}));
  EXPECT_EQ(Tensor::scalar(7.f).item(), 7.f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(Tensor::empty({17}).raw_data()) % 64, 0u);
}

TEST(Tensor, BadInputNamesShapes) {
  try {
    Tensor::from_vector({1, 2, 3}, {2, 2});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 2]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Tensor::empty({2, -1}), std::invalid_argument);
  EXPECT_THROW(Tensor::from_vector({1, 2}, {2}).item(), std::invalid_argument);
  EXPECT_THROW(Tensor::from_vector({1}, {1}).data<int32_t>(), std::invalid_argument);
  EXPECT_THROW(Tensor().shape(), std::logic_error);
  EXPECT_THROW(Tensor::zeros({2, 3}).dim(2), std::out_of_range);
}

TEST(Allocator, SameShapedStepsReuseMemory) {
  for (int i = 0; i < 3; ++i) Tensor::empty({1000, 1000});  // warm the size class
  AllocatorStats before = allocator_stats();
  for (int i = 0; i < 10; ++i) {
    Tensor a = Tensor::empty({1000, 1000});
    Tensor b = Tensor::empty({999, 1001});  // same class: within the 12.5% rounding
  }
  AllocatorStats after = allocator_stats();
  EXPECT_LE(after.system_allocations - before.system_allocations, 1u);
  EXPECT_GE(after.cache_hits - before.cache_hits, 19u);
}

TEST(Random, SeededIsDeterministic) {
  auto a = random_normal({100}, 0.f, 1.f, 7).to_vector();
  auto b = random_normal({100}, 0.f, 1.f, 7).to_vector();
  auto c = random_normal({100}, 0.f, 1.f, 8).to_vector();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double mean = 0;
  auto big = random_normal({20000}, 1.f, 2.f, 3).to_vector();
  for (float v : big) mean += v / big.size();
  EXPECT_NEAR(mean, 1.0, 0.05);
  for (float v : truncated_normal({1000}, 0.f, 1.f, 5).to_vector()) EXPECT_LE(std::fabs(v), 2.0f);
  for (float v : random_uniform({1000}, 2.f, 3.f, 5).to_vector()) {
    EXPECT_GE(v, 2.f);
    EXPECT_LT(v, 3.f);
  }
}

}  // namespace
}  // namespace kiln
