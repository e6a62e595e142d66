#include "tensor/onednn/engine.h"

#include "tensor/onednn/profiler.h"

#include <stdexcept>
#include <string>

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

dnnl::memory::desc desc_of(const Tensor& t) {
  if (t.ndim() == 0) return dnnl::memory::desc({1}, to_dnnl(t.dtype()), dnnl::memory::dims{1});
  dnnl::memory::dims strides(t.strides().begin(), t.strides().end());
  // oneDNN rejects zero strides for size-1 dims produced by some views; any stride is
  // equivalent there, so use the contiguous one.
  Strides contiguous = contiguous_strides(t.shape());
  for (int i = 0; i < t.ndim(); ++i) {
    if (t.shape()[i] == 1) strides[i] = contiguous[i];
  }
  return dnnl::memory::desc(to_dims(t.shape()), to_dnnl(t.dtype()), strides);
}

dnnl::memory::desc desc_of(const Tensor& t, const Shape& logical_shape) {
  if (!t.is_contiguous() || numel(logical_shape) != t.numel()) {
    throw std::logic_error("desc_of: reinterpretation needs a contiguous tensor of equal size; got " +
                           t.describe() + " as " + shape_str(logical_shape));
  }
  Shape shape = logical_shape.empty() ? Shape{1} : logical_shape;
  Strides strides = contiguous_strides(shape);
  return dnnl::memory::desc(to_dims(shape), to_dnnl(t.dtype()),
                            dnnl::memory::dims(strides.begin(), strides.end()));
}

dnnl::memory memory_of(const Tensor& t, const dnnl::memory::desc& desc) {
  return dnnl::memory(desc, cpu_engine(), t.raw_data());
}

dnnl::memory memory_of(const Tensor& t) { return memory_of(t, desc_of(t)); }

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

// Scratchpad plus the most arguments any Kiln primitive takes (conv backward with bias: 6).
constexpr size_t kMaxArgs = 16;

// Args are gathered into a stack array and run through the C API: the C++ wrapper would
// copy them into a std::vector on every call, and a scratchpad into a copied map.
template <typename Args>
void run(const char* op, const dnnl::primitive& prim, const Args& args) {
  dnnl_exec_arg_t c_args[kMaxArgs];
  size_t n = 0;
  for (const auto& [arg, mem] : args) {
    if (n + 1 == kMaxArgs) throw std::logic_error(std::string(op) + ": too many primitive arguments");
    c_args[n++] = {arg, mem.get()};
  }
  const_dnnl_primitive_desc_t pd = prim.get_primitive_desc();
  const dnnl_memory_desc_t* scratch_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  size_t scratch_bytes = scratch_md ? dnnl_memory_desc_get_size(scratch_md) : 0;
  // Per call, from the caching allocator: concurrent calls of one primitive never share it.
  Tensor scratch;
  dnnl::memory scratch_mem;
  if (scratch_bytes > 0) {
    scratch = Tensor::empty({static_cast<int64_t>(scratch_bytes)}, DType::u8);
    scratch_mem = dnnl::memory(dnnl::memory::desc(*scratch_md), cpu_engine(), scratch.raw_data());
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
