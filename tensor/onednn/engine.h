#pragma once
#include <initializer_list>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <utility>

#include "tensor/tensor.h"

namespace kiln::onednn {

dnnl::engine& cpu_engine();
dnnl::stream& cpu_stream();

dnnl::memory::data_type to_dnnl(DType dtype);
dnnl::memory::dims to_dims(const Shape& shape);
// Plain (strided) descriptor of a tensor as it is laid out; scalars become 1-element 1-D.
dnnl::memory::desc desc_of(const Tensor& t);
dnnl::memory::desc desc_of(const Tensor& t, const Shape& logical_shape);
// A memory object over t's data. Plain layouts come from a per-thread cache, so the object
// may be shared with other calls: never give it another data handle.
dnnl::memory memory_of(const Tensor& t, const dnnl::memory::desc& desc);
// memory_of(t, desc_of(t)); a cached object is found without building the descriptor.
dnnl::memory memory_of(const Tensor& t);
// memory_of(t, desc_of(t, logical_shape)), likewise.
dnnl::memory memory_as(const Tensor& t, const Shape& logical_shape);
// Allocates a tensor large enough for desc (which may be a blocked layout); the caller keeps
// the tensor alive while the memory is used.
Tensor buffer_for(const dnnl::memory::desc& desc, DType dtype, dnnl::memory* out_memory);

// The attributes every Kiln primitive is created with: a user-managed scratchpad. oneDNN's
// library-managed scratchpad is shared per creating thread, so a cached primitive executed on
// another thread (a model shared by predict() threads) would race on it; execute() gives
// each call its own scratchpad instead.
dnnl::primitive_attr default_attr();

// Runs a primitive with a scratchpad of its own and waits; converts oneDNN errors into
// exceptions naming the op. Every primitive Kiln runs goes through here, which is where
// onednn::profiler times them. The list form builds no map (a braced list picks it).
using ExecArg = std::pair<int, dnnl::memory>;
void execute(const char* op, const dnnl::primitive& prim, std::initializer_list<ExecArg> args);
void execute(const char* op, const dnnl::primitive& prim,
             const std::unordered_map<int, dnnl::memory>& args);

}  // namespace kiln::onednn
