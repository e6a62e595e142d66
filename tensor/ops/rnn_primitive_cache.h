#pragma once
#include <cstddef>
#include <functional>

#include "tensor/onednn/primitive_cache.h"

namespace kiln::rnn_detail {

// oneDNN's RNN primitives are made for one (rows, steps) shape, and a masked batch runs one
// primitive per group of equal runs, so a stream of varied masks would make a primitive per
// (rows, length) pair met. They live in a cache of their own: least recently used out past
// kRnnPrimitiveCacheCapacity, so it cannot grow with the variety of masks nor push the other
// ops' primitives out of the shared cache (onednn::cached, 1024 entries).
inline constexpr size_t kRnnPrimitiveCacheCapacity = 64;

// The primitive for key, made with make on a miss (its implementation logged as op's).
onednn::CachedPrimitive rnn_cached(const char* op, const onednn::KeyBuilder& key,
                                   const std::function<onednn::CachedPrimitive()>& make);

onednn::PrimitiveCacheStats rnn_primitive_cache_stats();

}  // namespace kiln::rnn_detail
