#include "tensor/ops/rnn_primitive_cache.h"

namespace kiln::rnn_detail {
namespace {

onednn::PrimitiveCache& cache() {
  static auto* c = new onednn::PrimitiveCache(kRnnPrimitiveCacheCapacity);  // never destroyed, as the shared one
  return *c;
}

}  // namespace

onednn::CachedPrimitive rnn_cached(const char* op, const onednn::KeyBuilder& key,
                                   const std::function<onednn::CachedPrimitive()>& make) {
  onednn::CachedPrimitive hit;
  if (cache().find(key.view(), &hit)) return hit;
  return cache().create(op, key, make);
}

onednn::PrimitiveCacheStats rnn_primitive_cache_stats() { return cache().stats(); }

}  // namespace kiln::rnn_detail
