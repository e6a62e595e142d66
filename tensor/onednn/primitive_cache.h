#pragma once
#include <cstring>
#include <functional>
#include <list>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <string_view>
#include <unordered_map>

#include "tensor/tensor.h"

namespace kiln::onednn {

// Builds the cache key for one (op, shapes, dtypes, strides, attributes) combination. Looked
// up on every op call, so it is built without heap allocation or number formatting: each
// field is appended as tagged raw bytes into an inline buffer, and describe() turns that
// back into text for the implementation log (on a cache miss only).
class KeyBuilder {
 public:
  explicit KeyBuilder(const char* op) { add_text('o', op, std::strlen(op)); }
  KeyBuilder(const KeyBuilder& other) { *this = other; }
  KeyBuilder& operator=(const KeyBuilder& other);
  KeyBuilder& add(const Tensor& t);
  KeyBuilder& add(const dnnl::memory::desc& d);
  KeyBuilder& add(int64_t v);
  KeyBuilder& add(float v);
  KeyBuilder& add(const std::string& s) { return add_text('s', s.data(), s.size()); }
  KeyBuilder& add(const char* s) { return add_text('s', s, std::strlen(s)); }
  KeyBuilder& add(const Shape& s);
  // The key's bytes (only equality and hashing mean anything).
  std::string_view view() const { return {data(), size_}; }
  std::string str() const { return std::string(view()); }
  // The key as text: "matmul|f32[32, 784]|7", ...
  std::string describe() const;

 private:
  static constexpr size_t kInline = 480;  // every Kiln key fits; longer ones move to the heap
  KeyBuilder& add_text(char tag, const char* s, size_t n);
  // Inline: a key takes ~20 of these per op call.
  void put(const void* p, size_t n) {
    if (n == 0) return;  // an empty shape's data() may be null, which memcpy must not get
    if (heap_.empty() && size_ + n <= kInline) {
      std::memcpy(inline_ + size_, p, n);
      size_ += n;
    } else {
      spill(p, n);
    }
  }
  void spill(const void* p, size_t n);
  template <typename T>
  void put_value(T v) { put(&v, sizeof v); }
  const char* data() const { return heap_.empty() ? inline_ : heap_.data(); }

  char inline_[kInline];
  size_t size_ = 0;
  std::string heap_;  // used once size_ would pass kInline
};

struct CachedPrimitive {
  dnnl::primitive_desc_base pd;  // for memory-descriptor queries
  dnnl::primitive primitive;
};

struct PrimitiveCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;  // each miss created a primitive
  size_t size = 0;
  size_t capacity = 0;
};

// Primitives by key, least recently used out past `capacity` (0: unbounded). The shared cache
// below is one; an op whose keys vary with user data (the RNN's mask runs) keeps its own.
class PrimitiveCache {
 public:
  explicit PrimitiveCache(size_t capacity);
  // The cached primitive for key, if there is one (counts a hit, refreshes its LRU place).
  bool find(std::string_view key, CachedPrimitive* out);
  // Creates the primitive with make after a miss, caches it (LRU eviction) and logs its
  // implementation through kiln::cpu's implementation log.
  CachedPrimitive create(std::string_view op, const KeyBuilder& key, const std::function<CachedPrimitive()>& make);
  PrimitiveCacheStats stats();

 private:
  // Lets the index be searched with the string_view of a KeyBuilder, without building a
  // std::string per lookup.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::mutex mu_;
  const size_t capacity_;
  std::list<std::pair<std::string, CachedPrimitive>> lru_;  // front = most recent
  std::unordered_map<std::string, decltype(lru_)::iterator, KeyHash, std::equal_to<>> index_;
  uint64_t hits_ = 0, misses_ = 0;
};

// The shared cache (KILN_PRIMITIVE_CACHE_CAPACITY entries, 1024 by default).
PrimitiveCache& shared_primitive_cache();

// The cached primitive for key in the shared cache, if there is one.
bool find_primitive(std::string_view key, CachedPrimitive* out);
// Creates the primitive with make after a miss, in the shared cache.
CachedPrimitive create_primitive(std::string_view op, const KeyBuilder& key,
                                 const std::function<CachedPrimitive()>& make);

// A hit costs a hash lookup: make_pd is a template parameter, not a std::function, so the
// caller's lambda is never copied to the heap unless a primitive has to be created.
template <typename Prim, typename MakePd>
CachedPrimitive cached(std::string_view op, const KeyBuilder& key, MakePd&& make_pd) {
  CachedPrimitive hit;
  if (find_primitive(key.view(), &hit)) return hit;
  return create_primitive(op, key, [&] {
    auto pd = make_pd();
    return CachedPrimitive{pd, Prim(pd)};
  });
}

// Copies `from` into `to` through a cached oneDNN reorder (layout and/or dtype conversion).
void reorder(const char* op, const dnnl::memory& from, const dnnl::memory& to);

PrimitiveCacheStats primitive_cache_stats();

}  // namespace kiln::onednn
