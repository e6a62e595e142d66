#include "tensor/allocator.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

namespace kiln {
namespace {

// No machine Kiln runs on has 2^48 bytes; refusing larger requests up front keeps the size
// arithmetic below from overflowing.
constexpr size_t kMaxBytes = size_t{1} << 48;

std::string too_large(size_t bytes) {
  return "cannot allocate " + std::to_string(bytes) + " bytes for a tensor: out of memory";
}

// Round sizes to classes so slightly different requests share blocks: 64-byte steps up to
// 4 KiB, then eighths of the next power of two (at most 12.5% waste).
size_t size_class(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes > kMaxBytes) throw AllocationError(too_large(bytes));
  if (bytes <= 4096) return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  size_t pow2 = 1;
  while (pow2 < bytes) pow2 <<= 1;
  size_t step = pow2 / 8;
  return (bytes + step - 1) / step * step;
}

size_t cache_limit_bytes() {
  if (const char* env = std::getenv("KILN_ALLOCATOR_CACHE_MB")) {
    return static_cast<size_t>(std::stoull(env)) << 20;
  }
  return size_t{4} << 30;
}

struct CachingAllocator {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;
  AllocatorStats stats;
  size_t limit = cache_limit_bytes();

  void* take(size_t capacity) {
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = free_lists.find(capacity);
      if (it != free_lists.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        stats.cache_hits++;
        stats.bytes_cached -= capacity;
        stats.bytes_in_use += capacity;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlignment, capacity);
    if (!p) {
      release_cached_memory();
      p = std::aligned_alloc(kAlignment, capacity);
      if (!p) throw AllocationError(too_large(capacity));
    }
    std::lock_guard<std::mutex> lock(mu);
    stats.system_allocations++;
    stats.bytes_in_use += capacity;
    return p;
  }

  void give_back(void* p, size_t capacity) {
    std::lock_guard<std::mutex> lock(mu);
    stats.bytes_in_use -= capacity;
    if (stats.bytes_cached + capacity > limit) {
      std::free(p);
      return;
    }
    free_lists[capacity].push_back(p);
    stats.bytes_cached += capacity;
  }

  void release_all() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [cap, list] : free_lists) {
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
  size_t capacity = size_class(bytes);
  void* p = allocator().take(capacity);
  return std::make_shared<Storage>(p, bytes, capacity);
}

AllocatorStats allocator_stats() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  return allocator().stats;
}

void release_cached_memory() { allocator().release_all(); }

}  // namespace kiln
