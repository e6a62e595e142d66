#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace kiln {

// Deterministic across platforms: our own generator and transforms, not <random>'s
// implementation-defined distributions. Seed 0 draws from the global seed sequence, which
// set_global_seed() makes reproducible. Each thread draws from its own copy of that sequence,
// started from the global seed at the thread's first draw; set_global_seed() restarts the
// calling thread's copy. What a thread draws never depends on other threads.
void set_global_seed(uint64_t seed);
uint64_t next_global_seed();

Tensor random_uniform(const Shape& shape, float low, float high, uint64_t seed = 0,
                      DType dtype = DType::f32);
Tensor random_normal(const Shape& shape, float mean, float stddev, uint64_t seed = 0,
                     DType dtype = DType::f32);
// Normal values redrawn until within two standard deviations (Keras TruncatedNormal).
Tensor truncated_normal(const Shape& shape, float mean, float stddev, uint64_t seed = 0,
                        DType dtype = DType::f32);

// SplitMix64 seeded xoshiro256** stream.
class RandomStream {
 public:
  explicit RandomStream(uint64_t seed);
  uint64_t next_u64();
  double uniform01();  // [0, 1)
  double normal();
  uint64_t below(uint64_t n);  // uniform in [0, n)

 private:
  uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0;
};

}  // namespace kiln
