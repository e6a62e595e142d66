#include "tensor/onednn/engine.h"

#include "tensor/onednn/profiler.h"

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln::onednn {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& cpu_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

dnnl::memory::data_type to_dnnl(DType dtype) {
  using dt = dnnl::memory::data_type;
  switch (dtype) {
    case DType::f32: return dt::f32;
    case DType::bf16: return dt::bf16;
    case DType::s8: return dt::s8;
    case DType::u8: return dt::u8;
    case DType::s32: return dt::s32;
  }
  throw std::invalid_argument("to_dnnl: unknown dtype");
}

dnnl::memory::dims to_dims(const Shape& shape) {
  if (shape.empty()) return {1};
  return dnnl::memory::dims(shape.begin(), shape.end());
}

namespace {

// A plain descriptor from dims and strides, through the C API from stack arrays: the C++
// constructor takes std::vectors, three heap allocations per tensor per op call.
dnnl::memory::desc plain_desc(int ndims, const int64_t* dims, const int64_t* strides, DType dtype) {
  dnnl_memory_desc_t md;
  dnnl_status_t status = dnnl_memory_desc_init_by_strides(&md, ndims, dims, static_cast<dnnl_data_type_t>(to_dnnl(dtype)),
                                                          strides);
  if (status != dnnl_success) {
    throw std::invalid_argument("desc_of: oneDNN rejects this layout (status " + std::to_string(int(status)) + ")");
  }
  return dnnl::memory::desc(md);
}

}  // namespace

dnnl::memory::desc desc_of(const Tensor& t) {
  const int64_t one = 1;
  if (t.ndim() == 0) return plain_desc(1, &one, &one, t.dtype());
  const int nd = t.ndim();
  if (nd > DNNL_MAX_NDIMS) throw std::invalid_argument("desc_of: oneDNN takes at most 12 dims, got " + t.describe());
  int64_t strides[DNNL_MAX_NDIMS];
  // oneDNN rejects zero strides for size-1 dims produced by some views; any stride is
  // equivalent there, so use the contiguous one.
  int64_t contiguous = 1;
  for (int i = nd - 1; i >= 0; --i) {
    strides[i] = t.shape()[i] == 1 ? contiguous : t.strides()[i];
    contiguous *= t.shape()[i];
  }
  return plain_desc(nd, t.shape().data(), strides, t.dtype());
}

dnnl::memory::desc desc_of(const Tensor& t, const Shape& logical_shape) {
  if (!t.is_contiguous() || numel(logical_shape) != t.numel()) {
    throw std::logic_error("desc_of: reinterpretation needs a contiguous tensor of equal size; got " +
                           t.describe() + " as " + shape_str(logical_shape));
  }
  const int64_t one = 1;
  if (logical_shape.empty()) return plain_desc(1, &one, &one, t.dtype());
  const int nd = static_cast<int>(logical_shape.size());
  if (nd > DNNL_MAX_NDIMS) throw std::invalid_argument("desc_of: oneDNN takes at most 12 dims, got " + shape_str(logical_shape));
  int64_t strides[DNNL_MAX_NDIMS];
  int64_t contiguous = 1;
  for (int i = nd - 1; i >= 0; --i) {
    strides[i] = contiguous;
    contiguous *= logical_shape[i];
  }
  return plain_desc(nd, logical_shape.data(), strides, t.dtype());
}

namespace {

// dnnl::memory objects for plain layouts, kept per thread by (data pointer, layout). Creating
// one costs two aligned allocations inside oneDNN and a control block (~0.3 us, a few per op);
// same-shaped training steps get the same buffers back from the caching allocator, so the
// same (pointer, layout) pairs recur every step. A cached object is never given another data
// handle, so sharing it between calls is safe. Padded (blocked) layouts are not cached:
// oneDNN zero-pads those when a memory is created over a buffer.
class MemoryCache {
 public:
  dnnl::memory get(void* data, const dnnl::memory::desc& desc) {
    const dnnl_memory_desc_t& md = desc.data;
    if (!cacheable(md)) return dnnl::memory(desc, cpu_engine(), data);
    return get(data, md.data_type, md.ndims, md.offset0, md.dims, md.format_desc.blocking.strides, [&] { return desc; });
  }

  // The same lookup from a plain layout's fields (what plain_desc would be given), so a hit
  // builds no descriptor; make_desc() runs on a miss only.
  template <typename MakeDesc>
  dnnl::memory get(void* data, int32_t dtype, int ndims, int64_t offset0, const int64_t* dims, const int64_t* strides,
                   MakeDesc&& make_desc) {
    Key key;
    key.data = data;
    key.dtype = dtype;
    key.ndims = ndims;
    key.offset0 = offset0;
    std::memcpy(key.dims, dims, ndims * sizeof(int64_t));
    std::memcpy(key.strides, strides, ndims * sizeof(int64_t));
    // Two ways per set: a step's few dozen (pointer, layout) pairs would otherwise evict each
    // other wherever two of them share a slot, and create their memory objects every step.
    Slot* set = &slots_[(key.hash() % kSets) * 2];
    for (int way = 0; way < 2; ++way) {
      if (set[way].memory && set[way].key == key) {
        set[0].recent = way == 0;
        return set[way].memory;
      }
    }
    // Built before the slot changes: make_desc() throws for a layout oneDNN cannot describe,
    // and a slot holding the new key with its old memory would hand that memory to the next
    // lookup of the key (a strided view read through another tensor's descriptor).
    dnnl::memory memory(make_desc(), cpu_engine(), data);
    Slot& victim = set[set[0].recent ? 1 : 0];
    set[0].recent = &victim == &set[0];
    victim.key = key;
    victim.memory = memory;
    return memory;
  }

 private:
  struct Key {
    void* data = nullptr;
    int32_t dtype = 0, ndims = 0;
    int64_t offset0 = 0;
    int64_t dims[DNNL_MAX_NDIMS] = {};
    int64_t strides[DNNL_MAX_NDIMS] = {};
    bool operator==(const Key& o) const {
      return data == o.data && dtype == o.dtype && ndims == o.ndims && offset0 == o.offset0 &&
             std::memcmp(dims, o.dims, ndims * sizeof(int64_t)) == 0 &&
             std::memcmp(strides, o.strides, ndims * sizeof(int64_t)) == 0;
    }
    size_t hash() const {
      // Every bit of each field reaches the low bits the set index uses (a multiplicative
      // hash let sizes that differ only above bit 8, such as scratchpads, share a slot).
      auto mix = [](uint64_t z) {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
      };
      uint64_t h = mix(reinterpret_cast<uintptr_t>(data) ^ (uint64_t(dtype) << 8 | uint64_t(ndims)));
      for (int i = 0; i < ndims; ++i) h = mix(h ^ uint64_t(dims[i])) ^ uint64_t(strides[i]);
      return static_cast<size_t>(mix(h ^ uint64_t(offset0)));
    }
  };
  struct Slot {
    Key key;
    dnnl::memory memory;
    bool recent = false;  // in a set's first slot: whether way 0 was used last
  };
  static bool cacheable(const dnnl_memory_desc_t& md) {
    if (md.format_kind != dnnl_blocked || md.format_desc.blocking.inner_nblks != 0 || md.extra.flags != 0) return false;
    for (int i = 0; i < md.ndims; ++i) {
      if (md.padded_dims[i] != md.dims[i] || md.padded_offsets[i] != 0) return false;
    }
    return true;
  }
  static constexpr size_t kSets = 256;  // a miss past two ways just creates anew
  Slot slots_[kSets * 2];
};

MemoryCache& memory_cache() {
  // On the heap (~120 KB), made by the threads that run primitives, not in every thread's TLS.
  thread_local std::unique_ptr<MemoryCache> cache = std::make_unique<MemoryCache>();
  return *cache;
}

// The scratchpad of the primitives this thread runs: execute() waits for each primitive, so
// one buffer per thread serves every call, and its memory objects come from the cache above.
// (A Tensor per call cost five allocations and a oneDNN memory object three more.)
struct ScratchBuffer {
  std::shared_ptr<Storage> storage;
  void* reserve(size_t bytes) {
    if (!storage || storage->bytes() < bytes) storage = allocate_storage(bytes);
    return storage->data();
  }
};

}  // namespace

dnnl::memory memory_of(const Tensor& t, const dnnl::memory::desc& desc) {
  return memory_cache().get(t.raw_data(), desc);
}

dnnl::memory memory_of(const Tensor& t) {
  // desc_of's layout, looked up before the descriptor is built.
  const int64_t one = 1;
  if (t.ndim() == 0) {
    return memory_cache().get(t.raw_data(), static_cast<int32_t>(to_dnnl(t.dtype())), 1, 0, &one, &one,
                              [&] { return desc_of(t); });
  }
  const int nd = t.ndim();
  if (nd > DNNL_MAX_NDIMS) return memory_of(t, desc_of(t));  // desc_of throws
  int64_t strides[DNNL_MAX_NDIMS];
  int64_t contiguous = 1;
  for (int i = nd - 1; i >= 0; --i) {
    strides[i] = t.shape()[i] == 1 ? contiguous : t.strides()[i];
    contiguous *= t.shape()[i];
  }
  return memory_cache().get(t.raw_data(), static_cast<int32_t>(to_dnnl(t.dtype())), nd, 0, t.shape().data(), strides,
                            [&] { return desc_of(t); });
}

dnnl::memory memory_as(const Tensor& t, const Shape& logical_shape) {
  const int nd = static_cast<int>(logical_shape.size());
  if (nd == 0 || nd > DNNL_MAX_NDIMS || !t.is_contiguous() || numel(logical_shape) != t.numel()) {
    return memory_of(t, desc_of(t, logical_shape));  // desc_of handles (or rejects) these
  }
  int64_t strides[DNNL_MAX_NDIMS];
  int64_t contiguous = 1;
  for (int i = nd - 1; i >= 0; --i) {
    strides[i] = contiguous;
    contiguous *= logical_shape[i];
  }
  return memory_cache().get(t.raw_data(), static_cast<int32_t>(to_dnnl(t.dtype())), nd, 0, logical_shape.data(),
                            strides, [&] { return desc_of(t, logical_shape); });
}

Tensor buffer_for(const dnnl::memory::desc& desc, DType dtype, dnnl::memory* out_memory) {
  size_t bytes = desc.get_size();
  int64_t elems = static_cast<int64_t>((bytes + dtype_size(dtype) - 1) / dtype_size(dtype));
  Tensor buf = Tensor::empty({elems}, dtype);
  *out_memory = dnnl::memory(desc, cpu_engine(), buf.raw_data());
  return buf;
}

dnnl::primitive_attr default_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

namespace {

// Scratchpad plus the arguments of nearly every Kiln primitive (conv backward with bias: 6) fit
// on the stack; more (a concat of many inputs) go to the heap, so no argument count is refused.
constexpr size_t kStackArgs = 16;

// Args are gathered into a stack array and run through the C API: the C++ wrapper would
// copy them into a std::vector on every call, and a scratchpad into a copied map.
template <typename Args>
void run(const char* op, const dnnl::primitive& prim, const Args& args) {
  dnnl_exec_arg_t stack_args[kStackArgs];
  std::vector<dnnl_exec_arg_t> heap_args;
  dnnl_exec_arg_t* c_args = stack_args;
  if (args.size() + 1 > kStackArgs) {
    heap_args.resize(args.size() + 1);
    c_args = heap_args.data();
  }
  size_t n = 0;
  for (const auto& [arg, mem] : args) c_args[n++] = {arg, mem.get()};
  const_dnnl_primitive_desc_t pd = prim.get_primitive_desc();
  const dnnl_memory_desc_t* scratch_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  size_t scratch_bytes = scratch_md ? dnnl_memory_desc_get_size(scratch_md) : 0;
  // Per thread: concurrent calls of one primitive never share it.
  dnnl::memory scratch_mem;
  if (scratch_bytes > 0) {
    thread_local ScratchBuffer scratch;
    scratch_mem = memory_cache().get(scratch.reserve(scratch_bytes), dnnl::memory::desc(*scratch_md));
    c_args[n++] = {DNNL_ARG_SCRATCHPAD, scratch_mem.get()};
  }
  dnnl::stream& stream = cpu_stream();
  profiler::Region timed;
  dnnl_status_t status = dnnl_primitive_execute(prim.get(), stream.get(), static_cast<int>(n), c_args);
  if (status == dnnl_success) status = dnnl_stream_wait(stream.get());
  if (timed.timing()) profiler::add_primitive(static_cast<int>(prim.get_kind()), timed.elapsed());
  if (status != dnnl_success) {
    throw std::runtime_error(std::string(op) + ": oneDNN execution failed: could not execute a primitive (status " +
                             std::to_string(static_cast<int>(status)) + ")");
  }
}

}  // namespace

void execute(const char* op, const dnnl::primitive& prim, std::initializer_list<ExecArg> args) {
  run(op, prim, args);
}

void execute(const char* op, const dnnl::primitive& prim, const std::unordered_map<int, dnnl::memory>& args) {
  run(op, prim, args);
}

}  // namespace kiln::onednn
