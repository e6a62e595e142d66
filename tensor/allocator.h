#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>

namespace kiln {

// Thrown when the system cannot provide a tensor's memory; the message names the byte count
// (a plain std::bad_alloc would not say what was asked for).
class AllocationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A block of 64-byte-aligned memory handed out by the caching allocator. When the last
// reference goes, the block returns to the allocator's free list for its size class, so
// same-shaped training steps reuse memory instead of calling malloc again.
class Storage {
 public:
  Storage(void* data, size_t bytes, size_t capacity) : data_(data), bytes_(bytes), capacity_(capacity) {}
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // Bumped by every in-place write (optimizer updates, assign), so caches keyed on this
  // storage (reordered weights) know when they are stale.
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  void bump_version() { version_.fetch_add(1, std::memory_order_acq_rel); }

 private:
  void* data_;
  size_t bytes_;
  size_t capacity_;
  std::atomic<uint64_t> version_{0};
};

struct AllocatorStats {
  uint64_t system_allocations = 0;  // calls that reached aligned_alloc
  uint64_t cache_hits = 0;          // requests served from a free list
  size_t bytes_in_use = 0;
  size_t bytes_cached = 0;
};

constexpr size_t kAlignment = 64;

std::shared_ptr<Storage> allocate_storage(size_t bytes);
AllocatorStats allocator_stats();
// Returns every cached block to the system (for tests and for callers that want memory back).
void release_cached_memory();

}  // namespace kiln
