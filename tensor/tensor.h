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

// A blocked memory layout (oneDNN's nChw16c-style formats) that a tensor's storage may hold
// instead of the row-major layout its strides describe. Such a "packed" tensor keeps its
// logical shape; only code that knows the layout reads its bytes (packed_data()), everything
// else sees a row-major copy through plain(). Defined by tensor/onednn/packed.h.
class PackedLayout {
 public:
  virtual ~PackedLayout() = default;
  virtual size_t bytes() const = 0;  // storage size, block padding included
  // Row-major contiguous values of the logical shape <-> the packed bytes.
  virtual void unpack(const void* packed, void* row_major) const = 0;
  virtual void pack(const void* row_major, void* packed) const = 0;
  virtual bool same_as(const PackedLayout& other) const = 0;
  virtual std::string name() const = 0;  // "Acdb64a"
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Strides strides;     // in elements
  DType dtype = DType::f32;
  uint64_t id = 0;     // unique for the process lifetime; the tape keys gradients on it
  bool trainable_variable = false;
  std::shared_ptr<const PackedLayout> packed;  // set: storage holds this layout, not strides
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

  // The first element in row-major layout; throws for a packed tensor (use plain()).
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

  // Packed layouts (see PackedLayout). A packed tensor is never contiguous.
  bool is_packed() const { return impl().packed != nullptr; }
  const std::shared_ptr<const PackedLayout>& packed_layout() const { return impl().packed; }
  // The storage bytes of a packed tensor, for code that knows its layout.
  void* packed_data() const;
  // This tensor if it is not packed; otherwise a row-major copy of its values.
  Tensor plain() const;
  // An uninitialized tensor whose storage holds `layout` (block padding zeroed).
  static Tensor empty_packed(const Shape& shape, DType dtype, std::shared_ptr<const PackedLayout> layout);
  // Moves this tensor's values into another storage layout, keeping the tensor's identity (id,
  // every handle to it): how a Variable switches between its Keras layout and a packed one.
  // `values` must have this tensor's shape and dtype; it is copied, not aliased.
  void relayout_from(const Tensor& values) const;

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
