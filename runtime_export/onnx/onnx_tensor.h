#pragma once
// Kiln tensors and dtypes as ONNX TensorProto / element types, shared by the exporter and the
// importer. Debian's libonnx-dev 1.12 ships only the onnx-ml protos (namespace onnx);
// onnx_pb.h defines the ONNX_API they need and includes them when ONNX_ML is set.
#ifndef ONNX_ML
#define ONNX_ML 1
#endif
#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace kiln::runtime_export::onnx_io {

// ONNX element type of a Kiln dtype; bf16 maps to FLOAT (exports are fp32).
int32_t onnx_elem_type(DType dtype);
// The Kiln dtype of an ONNX element type; throws std::invalid_argument naming `what` for types
// Kiln has no dtype for.
DType kiln_dtype(int32_t elem_type, const std::string& what);

// raw_data in little-endian, contiguous; bf16 is widened to f32.
void to_tensor_proto(const Tensor& t, const std::string& name, onnx::TensorProto* out);
onnx::TensorProto int64_tensor_proto(const std::vector<int64_t>& values, const std::string& name, bool scalar = false);

// Reads an initializer: FLOAT, UINT8, INT8, INT32 (raw_data or the typed field) into a fresh
// Kiln tensor. Every size is checked (checked_nbytes) against the bytes present before anything
// is allocated; external data and segments are rejected. Throws std::invalid_argument naming
// the initializer.
Tensor from_tensor_proto(const onnx::TensorProto& p);
// INT64 initializers (shapes, axes, slice bounds), size-checked the same way.
std::vector<int64_t> int64_values(const onnx::TensorProto& p);

}  // namespace kiln::runtime_export::onnx_io
