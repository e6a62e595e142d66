#include "tensor/onednn/engine.h"

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

void execute(const char* op, const dnnl::primitive& prim,
             const std::unordered_map<int, dnnl::memory>& args) {
  try {
    const dnnl_memory_desc_t* scratch_md =
        dnnl_primitive_desc_query_md(prim.get_primitive_desc(), dnnl_query_scratchpad_md, 0);
    size_t scratch_bytes = scratch_md ? dnnl_memory_desc_get_size(scratch_md) : 0;
    if (scratch_bytes == 0) {
      prim.execute(cpu_stream(), args);
    } else {
      // Per call, from the caching allocator: concurrent calls of one primitive never share it.
      Tensor scratch = Tensor::empty({static_cast<int64_t>(scratch_bytes)}, DType::u8);
      std::unordered_map<int, dnnl::memory> with_scratch = args;
      with_scratch[DNNL_ARG_SCRATCHPAD] = dnnl::memory(dnnl::memory::desc(*scratch_md), cpu_engine(), scratch.raw_data());
      prim.execute(cpu_stream(), with_scratch);
      cpu_stream().wait();
      return;
    }
    cpu_stream().wait();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string(op) + ": oneDNN execution failed: " + e.what());
  }
}

}  // namespace kiln::onednn
