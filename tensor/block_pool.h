#pragma once
#include <cstddef>

namespace kiln::detail {

// Per-thread free lists of small fixed-size blocks (shared_ptr control blocks, Storage
// headers): a training step creates and drops the same few dozen tensors every time, and
// each one used to cost heap allocations for these. A block freed on one thread joins that
// thread's list; a thread's lists go back to the heap when it exits. Sanitizer builds
// (KILN_SANITIZER) use the heap directly, so ASan still sees every use after free.
void* pool_allocate(size_t bytes);
void pool_deallocate(void* p, size_t bytes);

// A std allocator over pool_allocate, for std::allocate_shared and shared_ptr's control block.
template <typename T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() = default;
  template <typename U>
  PoolAllocator(const PoolAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(pool_allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { pool_deallocate(p, n * sizeof(T)); }
  template <typename U>
  bool operator==(const PoolAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const PoolAllocator<U>&) const { return false; }
};

}  // namespace kiln::detail
