#include "tensor/onednn/primitive_cache.h"

#include <cstdlib>
#include <list>
#include <mutex>
#include <unordered_map>

#include "tensor/onednn/engine.h"
#include "tensor/onednn/isa.h"

namespace kiln::onednn {
namespace {

struct Cache {
  std::mutex mu;
  size_t capacity = std::getenv("KILN_PRIMITIVE_CACHE_CAPACITY")
                        ? std::stoul(std::getenv("KILN_PRIMITIVE_CACHE_CAPACITY"))
                        : 1024;
  std::list<std::pair<std::string, CachedPrimitive>> lru;  // front = most recent
  std::unordered_map<std::string, decltype(lru)::iterator> index;
  uint64_t hits = 0, misses = 0;
};
Cache& cache() {
  static Cache* c = new Cache();
  return *c;
}

void append_desc(std::string& key, const dnnl::memory::desc& d) {
  const dnnl_memory_desc_t& c = d.data;
  key += "|t" + std::to_string(static_cast<int>(c.data_type)) + "d";
  for (int i = 0; i < c.ndims; ++i) key += std::to_string(c.dims[i]) + ",";
  if (c.format_kind == dnnl_blocked) {
    key += "s";
    for (int i = 0; i < c.ndims; ++i) key += std::to_string(c.format_desc.blocking.strides[i]) + ",";
    for (int i = 0; i < c.format_desc.blocking.inner_nblks; ++i) {
      key += "b" + std::to_string(c.format_desc.blocking.inner_blks[i]) + "@" +
             std::to_string(c.format_desc.blocking.inner_idxs[i]);
    }
  } else {
    key += "k" + std::to_string(static_cast<int>(c.format_kind));
  }
}

}  // namespace

KeyBuilder& KeyBuilder::add(const Tensor& t) {
  key_ += "|";
  key_ += dtype_name(t.dtype());
  key_ += shape_str(t.shape());
  if (!t.is_contiguous()) key_ += "s" + shape_str(t.strides());
  return *this;
}
KeyBuilder& KeyBuilder::add(const dnnl::memory::desc& d) {
  append_desc(key_, d);
  return *this;
}
KeyBuilder& KeyBuilder::add(int64_t v) {
  key_ += "|" + std::to_string(v);
  return *this;
}
KeyBuilder& KeyBuilder::add(float v) {
  key_ += "|" + std::to_string(v);
  return *this;
}
KeyBuilder& KeyBuilder::add(const std::string& s) {
  key_ += "|" + s;
  return *this;
}
KeyBuilder& KeyBuilder::add(const Shape& s) {
  key_ += "|" + shape_str(s);
  return *this;
}

CachedPrimitive get_primitive(const std::string& op, const std::string& key,
                                     const std::function<CachedPrimitive()>& make) {
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.index.find(key);
    if (it != c.index.end()) {
      c.hits++;
      c.lru.splice(c.lru.begin(), c.lru, it->second);
      return it->second->second;
    }
  }
  CachedPrimitive created;
  try {
    created = make();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(op + ": oneDNN cannot create a primitive for " + key + ": " + e.what());
  }
  if (created.pd.get_primitive_attr().get_scratchpad_mode() != dnnl::scratchpad_mode::user) {
    throw std::logic_error(op + ": primitive created without onednn::default_attr(); its scratchpad would be shared "
                                "between threads");
  }
  cpu::record_impl(op, created.pd.impl_info_str(), key);
  std::lock_guard<std::mutex> lock(c.mu);
  c.misses++;
  auto it = c.index.find(key);
  if (it != c.index.end()) return it->second->second;  // another thread won the race
  c.lru.emplace_front(key, std::move(created));
  c.index[key] = c.lru.begin();
  while (c.lru.size() > c.capacity && c.capacity > 0) {
    c.index.erase(c.lru.back().first);
    c.lru.pop_back();
  }
  return c.lru.front().second;
}

void reorder(const char* op, const dnnl::memory& from, const dnnl::memory& to) {
  auto from_md = from.get_desc(), to_md = to.get_desc();
  auto prim = cached<dnnl::reorder>(op, KeyBuilder("reorder").add(from_md).add(to_md), [&] {
    return dnnl::reorder::primitive_desc(cpu_engine(), from_md, cpu_engine(), to_md, default_attr());
  });
  execute(op, prim.primitive, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
}

PrimitiveCacheStats primitive_cache_stats() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return {cache().hits, cache().misses, cache().lru.size(), cache().capacity};
}

}  // namespace kiln::onednn
