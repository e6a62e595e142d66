// The RNN primitives' own LRU cache (tensor/ops/rnn_primitive_cache.h): a stream of masks
// with ever new run lengths makes a primitive per length, and the cache stays at its bound,
// drops the least recently used and keeps the one just used.
#include <gtest/gtest.h>

#include <vector>

#include "tensor/onednn/primitive_cache.h"
#include "tensor/ops/ops.h"
#include "tensor/ops/rnn_primitive.h"
#include "tensor/ops/rnn_primitive_cache.h"
#include "tensor/ops/rnn_small_batch.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using rnn_detail::kRnnPrimitiveCacheCapacity;
using rnn_detail::rnn_primitive_cache_stats;

// Rows enough for oneDNN's primitive: fewer take the small-batch kernel, which caches nothing.
constexpr int64_t kI = 2, kU = 3, kRows = 16;
const int64_t kSteps = static_cast<int64_t>(kRnnPrimitiveCacheCapacity) + 16;

// Rows whose first `length` steps are real: their own primitive (kRows rows, `length` steps).
std::vector<Tensor> run_length(int64_t length) {
  std::vector<float> mask(kRows * kSteps, 0.f);
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t s = 0; s < length; ++s) mask[r * kSteps + s] = 1.f;
  return simple_rnn(testing::rand_tensor({kRows, kSteps, kI}, 1), testing::rand_tensor({kI, kU}, 2),
                    testing::rand_tensor({kU, kU}, 3), testing::rand_tensor({kU}, 4), Tensor(),
                    Tensor::from_vector(mask, {kRows, kSteps}));
}

TEST(RnnPrimitiveCache, StaysAtItsBoundUnderEverNewMaskLengths) {
  ASSERT_FALSE(rnn_detail::small_batch_rnn_wins(rnn_detail::RnnCell::simple_rnn, kRows, kU));
  // One primitive call per run: split into row chunks, equal chunks would hit once each.
  rnn_detail::ForceRowChunks one_chunk(1);
  const size_t shared_before = onednn::primitive_cache_stats().size;
  const auto before = rnn_primitive_cache_stats();
  for (int64_t length = 1; length <= kSteps; ++length) run_length(length);
  const auto after = rnn_primitive_cache_stats();
  EXPECT_EQ(after.capacity, kRnnPrimitiveCacheCapacity);
  EXPECT_EQ(after.size, kRnnPrimitiveCacheCapacity);
  EXPECT_EQ(after.misses - before.misses, static_cast<uint64_t>(kSteps));
  // The RNN primitives stay out of the shared cache (the casts and reorders around them may
  // add a few entries there, never one per length).
  EXPECT_LT(onednn::primitive_cache_stats().size, shared_before + 8);

  // The most recent length is a hit; the first one was dropped and is made again.
  run_length(kSteps);
  EXPECT_EQ(rnn_primitive_cache_stats().misses, after.misses);
  EXPECT_EQ(rnn_primitive_cache_stats().hits, after.hits + 1);
  run_length(1);
  EXPECT_EQ(rnn_primitive_cache_stats().misses, after.misses + 1);
  EXPECT_EQ(rnn_primitive_cache_stats().size, kRnnPrimitiveCacheCapacity);
}

}  // namespace
}  // namespace kiln
