#include "tensor/ops/rnn_primitive_cache.h"

#include <list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "tensor/onednn/isa.h"

namespace kiln::rnn_detail {
namespace {

struct Cache {
  std::mutex mu;
  std::list<std::pair<std::string, onednn::CachedPrimitive>> lru;  // front = most recent
  std::unordered_map<std::string, decltype(lru)::iterator> index;
  uint64_t hits = 0, misses = 0;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: primitives may run during static teardown
  return *c;
}

}  // namespace

onednn::CachedPrimitive rnn_cached(const char* op, const onednn::KeyBuilder& key,
                                   const std::function<onednn::CachedPrimitive()>& make) {
  Cache& c = cache();
  const std::string k = key.str();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.index.find(k);
    if (it != c.index.end()) {
      c.hits++;
      c.lru.splice(c.lru.begin(), c.lru, it->second);
      return it->second->second;
    }
  }
  onednn::CachedPrimitive created;
  try {
    created = make();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string(op) + ": oneDNN cannot create a primitive for " + key.describe() + ": " +
                             e.what());
  }
  cpu::record_impl(op, created.pd.impl_info_str(), key.describe());
  std::lock_guard<std::mutex> lock(c.mu);
  c.misses++;
  auto it = c.index.find(k);
  if (it != c.index.end()) return it->second->second;  // another thread made it meanwhile
  c.lru.emplace_front(k, std::move(created));
  c.index.emplace(k, c.lru.begin());
  while (c.lru.size() > kRnnPrimitiveCacheCapacity) {
    c.index.erase(c.lru.back().first);
    c.lru.pop_back();
  }
  return c.lru.front().second;
}

RnnPrimitiveCacheStats rnn_primitive_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {c.hits, c.misses, c.lru.size(), kRnnPrimitiveCacheCapacity};
}

}  // namespace kiln::rnn_detail
