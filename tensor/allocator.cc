#include "tensor/allocator.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "tensor/block_pool.h"

namespace kiln {
namespace {

// No machine Kiln runs on has 2^48 bytes; refusing larger requests up front keeps the size
// arithmetic below from overflowing.
constexpr size_t kMaxBytes = size_t{1} << 48;

std::string too_large(size_t bytes) {
  return "cannot allocate " + std::to_string(bytes) + " bytes for a tensor: out of memory";
}

// Round sizes to classes so slightly different requests share blocks: 64-byte steps up to
// 4 KiB, then eighths of the next power of two (at most 12.5% waste). Each class has a
// number, so its free list is found by indexing, not hashing (every tensor allocation and
// release looks one up).
struct SizeClass {
  size_t bytes;
  size_t index;
};
constexpr size_t kSmallClasses = 4096 / kAlignment;  // 64, 128, ..., 4096: indices 0..63

SizeClass size_class(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes > kMaxBytes) throw AllocationError(too_large(bytes));
  if (bytes <= 4096) {
    size_t steps = (bytes + kAlignment - 1) / kAlignment;
    return {steps * kAlignment, steps - 1};
  }
  int log2 = 12;  // pow2 = 2^log2 is the first power of two >= bytes (> 4096)
  while ((size_t{1} << log2) < bytes) ++log2;
  size_t step = (size_t{1} << log2) / 8;
  size_t eighths = (bytes + step - 1) / step;  // 5..8 (bytes > pow2 / 2)
  return {eighths * step, kSmallClasses + static_cast<size_t>(log2 - 13) * 8 + eighths};
}
// Classes up to 2^48 bytes (kMaxBytes): 64 small ones, then at most 9 per power of two.
constexpr size_t kClasses = kSmallClasses + (48 - 12 + 1) * 8 + 16;

size_t cache_limit_bytes() {
  if (const char* env = std::getenv("KILN_ALLOCATOR_CACHE_MB")) {
    return static_cast<size_t>(std::stoull(env)) << 20;
  }
  return size_t{4} << 30;
}

struct CachingAllocator {
  std::mutex mu;
  std::vector<std::vector<void*>> free_lists = std::vector<std::vector<void*>>(kClasses);
  AllocatorStats stats;
  size_t limit = cache_limit_bytes();

  void* take(const SizeClass& c) {
    {
      std::lock_guard<std::mutex> lock(mu);
      std::vector<void*>& list = free_lists[c.index];
      if (!list.empty()) {
        void* p = list.back();
        list.pop_back();
        stats.cache_hits++;
        stats.bytes_cached -= c.bytes;
        stats.bytes_in_use += c.bytes;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlignment, c.bytes);
    if (!p) {
      release_cached_memory();
      p = std::aligned_alloc(kAlignment, c.bytes);
      if (!p) throw AllocationError(too_large(c.bytes));
    }
    std::lock_guard<std::mutex> lock(mu);
    stats.system_allocations++;
    stats.bytes_in_use += c.bytes;
    return p;
  }

  void give_back(void* p, size_t capacity) {
    const size_t index = size_class(capacity).index;  // capacity is a class size: maps to itself
    std::lock_guard<std::mutex> lock(mu);
    stats.bytes_in_use -= capacity;
    if (stats.bytes_cached + capacity > limit) {
      std::free(p);
      return;
    }
    free_lists[index].push_back(p);
    stats.bytes_cached += capacity;
  }

  void release_all() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& list : free_lists) {
      for (void* p : list) std::free(p);
      list.clear();
    }
    stats.bytes_cached = 0;
  }
};

CachingAllocator& allocator() {
  // Leaked on purpose: tensors in static storage may be destroyed after this would be.
  static CachingAllocator* instance = new CachingAllocator();
  return *instance;
}

}  // namespace

Storage::~Storage() { allocator().give_back(data_, capacity_); }

std::shared_ptr<Storage> allocate_storage(size_t bytes) {
  SizeClass c = size_class(bytes);
  void* p = allocator().take(c);
  // The header and its control block come from the per-thread block pool (one object per tensor).
  return std::allocate_shared<Storage>(detail::PoolAllocator<Storage>{}, p, bytes, c.bytes);
}

AllocatorStats allocator_stats() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  return allocator().stats;
}

void release_cached_memory() { allocator().release_all(); }

}  // namespace kiln
