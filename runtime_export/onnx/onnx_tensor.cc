#include "runtime_export/onnx/onnx_tensor.h"

#include <cstring>
#include <stdexcept>

#include "tensor/ops/cast.h"
#include "tensor/ops/shape_ops.h"

namespace kiln::runtime_export::onnx_io {
namespace {

using TP = onnx::TensorProto;

// Kiln has no reason for more: a rank beyond this in a file is corruption.
constexpr int kMaxRank = 8;

Shape dims_of(const TP& p) {
  if (p.dims_size() > kMaxRank) {
    throw std::invalid_argument("initializer '" + p.name() + "' has rank " + std::to_string(p.dims_size()));
  }
  Shape s(p.dims().begin(), p.dims().end());
  return s;
}

void reject_external(const TP& p) {
  if (p.data_location() == TP::EXTERNAL || p.external_data_size() > 0) {
    throw std::invalid_argument("initializer '" + p.name() + "' uses external data, which Kiln does not read");
  }
  if (p.has_segment()) throw std::invalid_argument("initializer '" + p.name() + "' is segmented");
}

}  // namespace

int32_t onnx_elem_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
    case DType::bf16: return TP::FLOAT;
    case DType::s8: return TP::INT8;
    case DType::u8: return TP::UINT8;
    case DType::s32: return TP::INT32;
  }
  throw std::invalid_argument("onnx: unknown Kiln dtype");
}

DType kiln_dtype(int32_t elem_type, const std::string& what) {
  switch (elem_type) {
    case TP::FLOAT: return DType::f32;
    case TP::INT8: return DType::s8;
    case TP::UINT8: return DType::u8;
    case TP::INT32: return DType::s32;
    default: break;
  }
  throw std::invalid_argument(what + " has ONNX element type " + std::to_string(elem_type) +
                              ", which Kiln has no dtype for (FLOAT, UINT8, INT8, INT32)");
}

void to_tensor_proto(const Tensor& t, const std::string& name, TP* out) {
  Tensor dense = t.dtype() == DType::bf16 ? cast(t, DType::f32) : t;
  if (!dense.is_contiguous() || dense.offset() != 0) dense = dense.clone_detached();
  out->set_name(name);
  for (int64_t d : dense.shape()) out->add_dims(d);
  out->set_data_type(onnx_elem_type(dense.dtype()));
  out->set_raw_data(std::string(static_cast<const char*>(dense.raw_data()), dense.nbytes()));
}

TP int64_tensor_proto(const std::vector<int64_t>& values, const std::string& name, bool scalar) {
  TP p;
  p.set_name(name);
  if (!scalar) p.add_dims(static_cast<int64_t>(values.size()));
  p.set_data_type(TP::INT64);
  p.set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t)));
  return p;
}

Tensor from_tensor_proto(const TP& p) {
  reject_external(p);
  const std::string what = "initializer '" + p.name() + "'";
  DType dtype = kiln_dtype(p.data_type(), what);
  Shape shape = dims_of(p);
  const uint64_t want = checked_nbytes(shape, dtype_size(dtype), what);
  const uint64_t count = want / dtype_size(dtype);
  if (p.has_raw_data()) {
    if (p.raw_data().size() != want) {
      throw std::invalid_argument(what + " has " + std::to_string(p.raw_data().size()) + " bytes of raw_data; its " +
                                  std::string(dtype_name(dtype)) + shape_str(shape) + " needs " + std::to_string(want));
    }
    return Tensor::from_bytes(p.raw_data().data(), shape, dtype);
  }
  // Typed fields: FLOAT in float_data; UINT8, INT8 and INT32 in int32_data (the ONNX spec).
  uint64_t present = dtype == DType::f32 ? static_cast<uint64_t>(p.float_data_size())
                                         : static_cast<uint64_t>(p.int32_data_size());
  if (present != count) {
    throw std::invalid_argument(what + " holds " + std::to_string(present) + " values; its shape " + shape_str(shape) +
                                " needs " + std::to_string(count));
  }
  if (dtype == DType::f32) return Tensor::from_bytes(p.float_data().data(), shape, dtype);
  Tensor t = Tensor::empty(shape, dtype);
  for (uint64_t i = 0; i < count; ++i) {
    int32_t v = p.int32_data(static_cast<int>(i));
    bool fits = dtype == DType::s32 || (dtype == DType::u8 ? v >= 0 && v <= 255 : v >= -128 && v <= 127);
    if (!fits) throw std::invalid_argument(what + " holds " + std::to_string(v) + ", out of range for " + dtype_name(dtype));
    store_element(t.raw_data(), dtype, static_cast<int64_t>(i), v);
  }
  return t;
}

std::vector<int64_t> int64_values(const TP& p) {
  reject_external(p);
  const std::string what = "initializer '" + p.name() + "'";
  if (p.data_type() != TP::INT64) {
    throw std::invalid_argument(what + " should be INT64, got element type " + std::to_string(p.data_type()));
  }
  Shape shape = dims_of(p);
  const uint64_t want = checked_nbytes(shape, sizeof(int64_t), what);
  const uint64_t count = want / sizeof(int64_t);
  std::vector<int64_t> out;
  if (p.has_raw_data()) {
    if (p.raw_data().size() != want) {
      throw std::invalid_argument(what + " has " + std::to_string(p.raw_data().size()) + " bytes of raw_data; shape " +
                                  shape_str(shape) + " needs " + std::to_string(want));
    }
    out.resize(count);
    if (want) std::memcpy(out.data(), p.raw_data().data(), want);
    return out;
  }
  if (static_cast<uint64_t>(p.int64_data_size()) != count) {
    throw std::invalid_argument(what + " holds " + std::to_string(p.int64_data_size()) + " values; shape " +
                                shape_str(shape) + " needs " + std::to_string(count));
  }
  return std::vector<int64_t>(p.int64_data().begin(), p.int64_data().end());
}

}  // namespace kiln::runtime_export::onnx_io
