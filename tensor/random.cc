#include "tensor/random.h"

#include <atomic>
#include <cmath>

namespace kiln {
namespace {
// Each thread draws from its own copy of the seed sequence, started from the process-wide
// seed at the thread's first draw; set_global_seed() restarts the calling thread's copy and
// sets where threads that have not drawn yet will start. So what a thread draws depends only
// on what that thread did: two models built on two threads get the weights each gets alone.
std::atomic<uint64_t> seed_base{0x5eedC0FFEEull};

struct ThreadSeedStream {
  uint64_t state = 0;
  bool started = false;
};
thread_local ThreadSeedStream thread_stream;

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t resolve_seed(uint64_t seed) { return seed ? seed : next_global_seed(); }

template <typename F>
Tensor generate(const Shape& shape, DType dtype, F&& draw) {
  Tensor t = Tensor::empty(shape, dtype);
  void* p = t.raw_data();
  for (int64_t i = 0; i < t.numel(); ++i) store_element(p, dtype, i, draw());
  return t;
}
}  // namespace

void set_global_seed(uint64_t seed) {
  seed_base.store(seed);
  thread_stream = {seed, true};
}

uint64_t next_global_seed() {
  if (!thread_stream.started) thread_stream = {seed_base.load(), true};
  uint64_t s = thread_stream.state;
  thread_stream.state += 0x9e3779b97f4a7c15ull;
  return splitmix64(s) | 1;
}

RandomStream::RandomStream(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t RandomStream::next_u64() {
  uint64_t result = rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double RandomStream::uniform01() { return (next_u64() >> 11) * 0x1.0p-53; }

double RandomStream::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = 0;
  while (u1 <= 0) u1 = uniform01();
  double u2 = uniform01();
  double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2 * M_PI * u2);
  has_spare_ = true;
  return r * std::cos(2 * M_PI * u2);
}

uint64_t RandomStream::below(uint64_t n) {
  // Lemire's nearly-divisionless method would be faster; rejection keeps it exactly uniform.
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t v;
  do v = next_u64(); while (v >= limit);
  return v % n;
}

Tensor random_uniform(const Shape& shape, float low, float high, uint64_t seed, DType dtype) {
  RandomStream rs(resolve_seed(seed));
  return generate(shape, dtype, [&] { return low + (high - low) * rs.uniform01(); });
}

Tensor random_normal(const Shape& shape, float mean, float stddev, uint64_t seed, DType dtype) {
  RandomStream rs(resolve_seed(seed));
  return generate(shape, dtype, [&] { return mean + stddev * rs.normal(); });
}

Tensor truncated_normal(const Shape& shape, float mean, float stddev, uint64_t seed, DType dtype) {
  RandomStream rs(resolve_seed(seed));
  return generate(shape, dtype, [&] {
    double z;
    do z = rs.normal(); while (std::fabs(z) > 2.0);
    return mean + stddev * z;
  });
}

}  // namespace kiln
