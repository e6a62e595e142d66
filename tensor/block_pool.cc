#include "tensor/block_pool.h"

#include <new>

namespace kiln::detail {
namespace {

constexpr size_t kGranule = 16;
constexpr size_t kClasses = 16;     // blocks up to 256 bytes; larger ones use the heap
constexpr size_t kMaxPerClass = 512;  // beyond this a freed block goes back to the heap

struct FreeBlock {
  FreeBlock* next;
};
// Trivially destructible, so it stays usable while other thread_locals are destroyed at
// thread exit (Closer below marks it closed first).
struct FreeLists {
  FreeBlock* head[kClasses];
  size_t count[kClasses];
  bool closed;
};
thread_local FreeLists lists;

struct Closer {
  ~Closer() {
    lists.closed = true;
    for (size_t c = 0; c < kClasses; ++c) {
      while (FreeBlock* b = lists.head[c]) {
        lists.head[c] = b->next;
        ::operator delete(b);
      }
      lists.count[c] = 0;
    }
  }
};
void ensure_closer() {
  thread_local Closer closer;
  (void)closer;
}

}  // namespace

void* pool_allocate(size_t bytes) {
#ifndef KILN_SANITIZER
  size_t c = (bytes + kGranule - 1) / kGranule - 1;
  if (bytes > 0 && c < kClasses && lists.head[c]) {
    FreeBlock* b = lists.head[c];
    lists.head[c] = b->next;
    lists.count[c]--;
    return b;
  }
  // Rounded up to the class size, so the block can serve any request of its class.
  if (bytes > 0 && c < kClasses) return ::operator new((c + 1) * kGranule);
#endif
  return ::operator new(bytes);
}

void pool_deallocate(void* p, size_t bytes) {
#ifndef KILN_SANITIZER
  size_t c = (bytes + kGranule - 1) / kGranule - 1;
  if (bytes > 0 && c < kClasses && !lists.closed && lists.count[c] < kMaxPerClass) {
    ensure_closer();
    auto* b = static_cast<FreeBlock*>(p);
    b->next = lists.head[c];
    lists.head[c] = b;
    lists.count[c]++;
    return;
  }
#endif
  ::operator delete(p);
}

}  // namespace kiln::detail
