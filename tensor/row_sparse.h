#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace kiln {

// A row-sparse tensor (TensorFlow's IndexedSlices with its duplicates summed): a tensor of
// shape [R, ...] whose rows are zero except the listed ones. It is a packed tensor (see
// PackedLayout) whose storage holds only the listed rows, [rows.size(), ...] row-major, so
// code that knows the layout (the optimizers, clipping) works on the rows alone and
// everything else sees the dense values through plain(), the explicit dense fallback.
// gather()'s gradient with respect to its table is one: an embedding step touches only the
// rows its batch used, with no [vocab, dim] temporary.
class RowSparseLayout : public PackedLayout {
 public:
  // rows: strictly increasing, each in [0, dense_rows); row_elements: elements per row;
  // element_bytes: the dtype's size.
  RowSparseLayout(std::vector<int32_t> rows, int64_t dense_rows, int64_t row_elements, size_t element_bytes);
  size_t bytes() const override { return rows_.size() * static_cast<size_t>(row_elements_) * element_bytes_; }
  void unpack(const void* packed, void* row_major) const override;
  // Throws std::logic_error when row_major holds a nonzero value in a row the layout lacks
  // (packing it would drop that value).
  void pack(const void* row_major, void* packed) const override;
  bool same_as(const PackedLayout& other) const override;
  std::string name() const override;

  const std::vector<int32_t>& rows() const { return rows_; }
  int64_t dense_rows() const { return dense_rows_; }
  int64_t row_elements() const { return row_elements_; }

 private:
  std::vector<int32_t> rows_;
  int64_t dense_rows_, row_elements_;
  size_t element_bytes_;
};

// The row-sparse tensor of shape dense_shape whose rows `rows` (strictly increasing) hold
// `values` ([rows.size(), dense_shape[1:]...], any float dtype; its storage is shared, not
// copied, when it is contiguous). Throws std::invalid_argument naming what does not fit.
Tensor make_row_sparse(const Shape& dense_shape, std::vector<int32_t> rows, const Tensor& values);

// The layout of a row-sparse tensor, or nullptr for any other tensor.
const RowSparseLayout* row_sparse_layout(const Tensor& t);
inline bool is_row_sparse(const Tensor& t) { return t.defined() && row_sparse_layout(t) != nullptr; }

// The stored rows of a row-sparse tensor as a plain [rows, ...] tensor over the same storage.
Tensor row_sparse_values(const Tensor& t);

// The same rows converted to another float dtype (a new storage; t itself when it has it).
Tensor row_sparse_cast(const Tensor& t, DType dtype);

// a + b for two row-sparse tensors of one shape: the union of their rows, rows present in
// both added (in f32, then rounded to a's dtype). Never dense.
Tensor row_sparse_add(const Tensor& a, const Tensor& b);

}  // namespace kiln
