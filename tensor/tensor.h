#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/allocator.h"
#include "tensor/bf16.h"
#include "tensor/dtype.h"
#include "tensor/shape.h"

namespace kiln {

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<bf16>() { return DType::bf16; }
template <> constexpr DType dtype_of<int8_t>() { return DType::s8; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }
template <> constexpr DType dtype_of<int32_t>() { return DType::s32; }

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Strides strides;     // in elements
  DType dtype = DType::f32;
  uint64_t id = 0;     // unique for the process lifetime; the tape keys gradients on it
  bool trainable_variable = false;
};

// A handle to an n-dimensional array. Copies share data (like a Python reference);
// ops return new tensors. Differentiable ops and views live in tensor/ops.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  static Tensor empty(const Shape& shape, DType dtype = DType::f32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  static Tensor ones(const Shape& shape, DType dtype = DType::f32);
  static Tensor full(const Shape& shape, float value, DType dtype = DType::f32);
  static Tensor scalar(float value, DType dtype = DType::f32);
  // Values are converted to dtype (bf16 rounds to nearest even, integers round and saturate).
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape,
                            DType dtype = DType::f32);
  static Tensor from_int32(const std::vector<int32_t>& values, const Shape& shape);
  // Copies raw bytes laid out contiguously in dtype.
  static Tensor from_bytes(const void* data, const Shape& shape, DType dtype);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Strides& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int ndim() const { return static_cast<int>(impl().shape.size()); }
  int64_t dim(int axis) const;
  int64_t numel() const { return kiln::numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  size_t nbytes() const { return numel() * dtype_size(dtype()); }
  bool is_contiguous() const;
  uint64_t id() const { return impl().id; }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  void* raw_data() const;
  template <typename T> T* data() const {
    check_dtype(dtype_of<T>(), "data<T>");
    return static_cast<T*>(raw_data());
  }

  // Element values as float, in row-major order, whatever the strides and dtype.
  std::vector<float> to_vector() const;
  std::vector<int32_t> to_int32() const;
  float item() const;
  std::string to_string(int64_t max_elements = 64) const;

  // A raw alias of the same storage with other geometry; not recorded by autograd.
  Tensor alias(const Shape& shape, const Strides& strides, int64_t offset) const;
  // A new tensor with identical contents in fresh contiguous storage; not recorded.
  Tensor clone_detached() const;
  // Copies src's values (same shape, any dtype/strides) into this tensor in place.
  void copy_from(const Tensor& src) const;
  void fill(float value) const;
  void bump_version() const { impl().storage->bump_version(); }

  bool is_trainable_variable() const { return impl_ && impl_->trainable_variable; }
  void set_trainable_variable(bool v) { impl().trainable_variable = v; }

  void check_dtype(DType expected, const char* op) const;
  std::string describe() const;  // "f32[2, 3]"

 private:
  TensorImpl& impl() const;
  std::shared_ptr<TensorImpl> impl_;
};

uint64_t next_tensor_id();

// Reads/writes one element of any dtype by flat storage index (used by loops, readers, tests).
double load_element(const void* base, DType dtype, int64_t index);
void store_element(void* base, DType dtype, int64_t index, double value);

}  // namespace kiln
