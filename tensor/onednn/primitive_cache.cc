#include "tensor/onednn/primitive_cache.h"

#include <cstdlib>

#include "tensor/onednn/engine.h"
#include "tensor/onednn/isa.h"

namespace kiln::onednn {
namespace {

// Reads back what KeyBuilder wrote, for describe().
struct Reader {
  std::string_view bytes;
  size_t at = 0;
  template <typename T>
  T get() {
    T v{};
    if (at + sizeof v <= bytes.size()) std::memcpy(&v, bytes.data() + at, sizeof v);
    at += sizeof v;
    return v;
  }
  std::string_view text(size_t n) {
    std::string_view s = bytes.substr(std::min(at, bytes.size()), n);
    at += n;
    return s;
  }
  std::string dims(size_t n) {
    std::string s = "[";
    for (size_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(get<int64_t>());
    return s + "]";
  }
};

}  // namespace

KeyBuilder& KeyBuilder::operator=(const KeyBuilder& other) {
  if (this == &other) return *this;
  size_ = other.size_;
  heap_ = other.heap_;
  if (heap_.empty()) std::memcpy(inline_, other.inline_, size_);
  return *this;
}

void KeyBuilder::spill(const void* p, size_t n) {
  if (heap_.empty()) heap_.assign(inline_, size_);
  heap_.append(static_cast<const char*>(p), n);
  size_ += n;
}

KeyBuilder& KeyBuilder::add_text(char tag, const char* s, size_t n) {
  put_value(tag);
  put_value(static_cast<uint32_t>(n));
  put(s, n);
  return *this;
}

KeyBuilder& KeyBuilder::add(const Tensor& t) {
  const bool contiguous = t.is_contiguous();
  put_value('t');
  put_value(static_cast<uint8_t>(t.dtype()));
  put_value(static_cast<uint8_t>(t.ndim()));
  put_value(static_cast<uint8_t>(contiguous));
  put(t.shape().data(), t.shape().size() * sizeof(int64_t));
  if (!contiguous) put(t.strides().data(), t.strides().size() * sizeof(int64_t));
  return *this;
}

KeyBuilder& KeyBuilder::add(const dnnl::memory::desc& d) {
  const dnnl_memory_desc_t& c = d.data;
  put_value('d');
  put_value(static_cast<int32_t>(c.data_type));
  put_value(static_cast<int32_t>(c.ndims));
  put_value(static_cast<int32_t>(c.format_kind));
  put(c.dims, c.ndims * sizeof(int64_t));
  if (c.format_kind == dnnl_blocked) {
    const dnnl_blocking_desc_t& b = c.format_desc.blocking;
    put(b.strides, c.ndims * sizeof(int64_t));
    put_value(static_cast<int32_t>(b.inner_nblks));
    put(b.inner_blks, b.inner_nblks * sizeof(int64_t));
    put(b.inner_idxs, b.inner_nblks * sizeof(int64_t));
  } else if (c.format_kind != dnnl_format_kind_any && c.format_kind != dnnl_format_kind_undef) {
    put(&c.format_desc, sizeof(c.format_desc));  // opaque layouts (wino, rnn_packed): every field counts
  }
  // Padding, offsets and the extra fields change the bytes a primitive reads and writes: two
  // descriptors alike in dims and blocking but not here must not share a primitive. (An s8
  // weight layout with s8s8 compensation has the same blocking as one without, and a reorder
  // built for the first writes the compensation past the end of the second's buffer.) Most
  // descriptors have none of these, so one tag byte keeps their keys as short as before.
  bool padded = c.offset0 != 0;
  for (int i = 0; i < c.ndims; ++i) padded = padded || c.padded_dims[i] != c.dims[i] || c.padded_offsets[i] != 0;
  put_value(static_cast<char>(padded ? 'P' : 'p'));
  if (padded) {
    put_value(static_cast<int64_t>(c.offset0));
    put(c.padded_dims, c.ndims * sizeof(int64_t));
    put(c.padded_offsets, c.ndims * sizeof(int64_t));
  }
  const dnnl_memory_extra_desc_t& e = c.extra;
  put_value(static_cast<uint64_t>(e.flags));
  if (e.flags != dnnl_memory_extra_flag_none) {
    put_value(static_cast<int32_t>(e.compensation_mask));
    put_value(static_cast<float>(e.scale_adjust));
    put_value(static_cast<int32_t>(e.asymm_compensation_mask));
  }
  return *this;
}

KeyBuilder& KeyBuilder::add(int64_t v) {
  put_value('i');
  put_value(v);
  return *this;
}

KeyBuilder& KeyBuilder::add(float v) {
  put_value('f');
  put_value(v);
  return *this;
}

KeyBuilder& KeyBuilder::add(const Shape& s) {
  put_value('h');
  put_value(static_cast<uint8_t>(s.size()));
  put(s.data(), s.size() * sizeof(int64_t));
  return *this;
}

std::string KeyBuilder::describe() const {
  Reader r{view()};
  std::string out;
  while (r.at < r.bytes.size()) {
    char tag = r.get<char>();
    if (!out.empty()) out += "|";
    switch (tag) {
      case 'o':
      case 's': out += r.text(r.get<uint32_t>()); break;
      case 't': {
        auto dtype = static_cast<DType>(r.get<uint8_t>());
        size_t nd = r.get<uint8_t>();
        bool contiguous = r.get<uint8_t>();
        out += dtype_name(dtype) + r.dims(nd);
        if (!contiguous) out += "s" + r.dims(nd);
        break;
      }
      case 'd': {
        int32_t dt = r.get<int32_t>(), nd = r.get<int32_t>(), kind = r.get<int32_t>();
        out += "t" + std::to_string(dt) + "d" + r.dims(nd);
        if (kind == dnnl_blocked) {
          out += "s" + r.dims(nd);
          int32_t nblks = r.get<int32_t>();
          out += "b" + r.dims(nblks) + "@" + r.dims(nblks);
        } else {
          out += "k" + std::to_string(kind);
          if (kind != dnnl_format_kind_any && kind != dnnl_format_kind_undef) r.at += sizeof(dnnl_memory_desc_t::format_desc);
        }
        if (r.get<char>() == 'P') {  // one read per statement: operands of + are unsequenced
          out += "o" + std::to_string(r.get<int64_t>());
          out += "p" + r.dims(nd);
          out += "@" + r.dims(nd);
        }
        if (auto flags = r.get<uint64_t>()) {
          out += "x" + std::to_string(flags);
          out += "m" + std::to_string(r.get<int32_t>());
          out += "a" + std::to_string(r.get<float>());
          out += "z" + std::to_string(r.get<int32_t>());
        }
        break;
      }
      case 'i': out += std::to_string(r.get<int64_t>()); break;
      case 'f': out += std::to_string(r.get<float>()); break;
      case 'h': out += r.dims(r.get<uint8_t>()); break;
      default: return out + "?";
    }
  }
  return out;
}

PrimitiveCache::PrimitiveCache(size_t capacity) : capacity_(capacity) {}

bool PrimitiveCache::find(std::string_view key, CachedPrimitive* out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  hits_++;
  lru_.splice(lru_.begin(), lru_, it->second);
  *out = it->second->second;
  return true;
}

CachedPrimitive PrimitiveCache::create(std::string_view op_name, const KeyBuilder& key,
                                       const std::function<CachedPrimitive()>& make) {
  std::string op(op_name);
  CachedPrimitive created;
  try {
    created = make();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(op + ": oneDNN cannot create a primitive for " + key.describe() + ": " + e.what());
  }
  if (created.pd.get_primitive_attr().get_scratchpad_mode() != dnnl::scratchpad_mode::user) {
    throw std::logic_error(op + ": primitive created without onednn::default_attr(); its scratchpad would be shared "
                                "between threads");
  }
  cpu::record_impl(op, created.pd.impl_info_str(), key.describe());
  std::lock_guard<std::mutex> lock(mu_);
  misses_++;
  auto it = index_.find(key.view());
  if (it != index_.end()) return it->second->second;  // another thread won the race
  lru_.emplace_front(key.str(), std::move(created));
  index_.emplace(lru_.front().first, lru_.begin());
  while (lru_.size() > capacity_ && capacity_ > 0) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return lru_.front().second;
}

PrimitiveCacheStats PrimitiveCache::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return {hits_, misses_, lru_.size(), capacity_};
}

PrimitiveCache& shared_primitive_cache() {
  // Never destroyed: primitives may run during static teardown.
  static PrimitiveCache* c = new PrimitiveCache(std::getenv("KILN_PRIMITIVE_CACHE_CAPACITY")
                                                    ? std::stoul(std::getenv("KILN_PRIMITIVE_CACHE_CAPACITY"))
                                                    : 1024);
  return *c;
}

bool find_primitive(std::string_view key, CachedPrimitive* out) { return shared_primitive_cache().find(key, out); }

CachedPrimitive create_primitive(std::string_view op, const KeyBuilder& key,
                                 const std::function<CachedPrimitive()>& make) {
  return shared_primitive_cache().create(op, key, make);
}

void reorder(const char* op, const dnnl::memory& from, const dnnl::memory& to) {
  auto from_md = from.get_desc(), to_md = to.get_desc();
  auto prim = cached<dnnl::reorder>(op, KeyBuilder("reorder").add(from_md).add(to_md), [&] {
    return dnnl::reorder::primitive_desc(cpu_engine(), from_md, cpu_engine(), to_md, default_attr());
  });
  execute(op, prim.primitive, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
}

PrimitiveCacheStats primitive_cache_stats() { return shared_primitive_cache().stats(); }

}  // namespace kiln::onednn
