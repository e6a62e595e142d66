#pragma once
#include <functional>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "tensor/tensor.h"

namespace kiln::onednn {

// Builds the cache key for one (op, shapes, dtypes, strides, attributes) combination.
class KeyBuilder {
 public:
  explicit KeyBuilder(const char* op) : key_(op) {}
  KeyBuilder& add(const Tensor& t);
  KeyBuilder& add(const dnnl::memory::desc& d);
  KeyBuilder& add(int64_t v);
  KeyBuilder& add(float v);
  KeyBuilder& add(const std::string& s);
  KeyBuilder& add(const Shape& s);
  const std::string& str() const { return key_; }

 private:
  std::string key_;
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

// Returns the cached primitive for key, or creates one with make (LRU eviction). Each
// creation is logged through kiln::cpu's implementation log.
CachedPrimitive get_primitive(const std::string& op, const std::string& key,
                                     const std::function<CachedPrimitive()>& make);

template <typename Prim>
CachedPrimitive cached(const std::string& op, const KeyBuilder& key,
                              const std::function<typename Prim::primitive_desc()>& make_pd) {
  return get_primitive(op, key.str(), [&] {
    auto pd = make_pd();
    return CachedPrimitive{pd, Prim(pd)};
  });
}

// Copies `from` into `to` through a cached oneDNN reorder (layout and/or dtype conversion).
void reorder(const char* op, const dnnl::memory& from, const dnnl::memory& to);

PrimitiveCacheStats primitive_cache_stats();

}  // namespace kiln::onednn
