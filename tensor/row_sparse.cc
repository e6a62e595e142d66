#include "tensor/row_sparse.h"

#include <cstring>
#include <stdexcept>

namespace kiln {
namespace {

bool is_float_dtype(DType d) { return d == DType::f32 || d == DType::bf16; }

float element(const void* base, DType dtype, int64_t i) {
  return dtype == DType::f32 ? static_cast<const float*>(base)[i] : static_cast<float>(static_cast<const bf16*>(base)[i]);
}

void set_element(void* base, DType dtype, int64_t i, float v) {
  if (dtype == DType::f32) {
    static_cast<float*>(base)[i] = v;
  } else {
    static_cast<bf16*>(base)[i] = bf16(v);
  }
}

Tensor wrap(const Shape& dense_shape, DType dtype, std::shared_ptr<Storage> storage,
            std::shared_ptr<const RowSparseLayout> layout) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = dense_shape;
  impl->strides = contiguous_strides(dense_shape);
  impl->dtype = dtype;
  impl->id = next_tensor_id();
  impl->packed = std::move(layout);
  return Tensor(std::move(impl));
}

}  // namespace

RowSparseLayout::RowSparseLayout(std::vector<int32_t> rows, int64_t dense_rows, int64_t row_elements,
                                 size_t element_bytes)
    : rows_(std::move(rows)), dense_rows_(dense_rows), row_elements_(row_elements), element_bytes_(element_bytes) {
  for (size_t i = 0; i < rows_.size(); ++i) {
    if (rows_[i] < 0 || rows_[i] >= dense_rows_ || (i > 0 && rows_[i] <= rows_[i - 1])) {
      throw std::invalid_argument("RowSparseLayout: rows must be strictly increasing and in [0, " +
                                  std::to_string(dense_rows_) + "); entry " + std::to_string(i) + " is " +
                                  std::to_string(rows_[i]));
    }
  }
}

void RowSparseLayout::unpack(const void* packed, void* row_major) const {
  const size_t row_bytes = static_cast<size_t>(row_elements_) * element_bytes_;
  std::memset(row_major, 0, static_cast<size_t>(dense_rows_) * row_bytes);
  auto* dst = static_cast<char*>(row_major);
  const auto* src = static_cast<const char*>(packed);
  for (size_t i = 0; i < rows_.size(); ++i) std::memcpy(dst + rows_[i] * row_bytes, src + i * row_bytes, row_bytes);
}

void RowSparseLayout::pack(const void* row_major, void* packed) const {
  const size_t row_bytes = static_cast<size_t>(row_elements_) * element_bytes_;
  const auto* src = static_cast<const unsigned char*>(row_major);
  size_t next = 0;
  for (int64_t r = 0; r < dense_rows_; ++r) {
    const unsigned char* row = src + r * row_bytes;
    if (next < rows_.size() && rows_[next] == r) {
      std::memcpy(static_cast<char*>(packed) + next * row_bytes, row, row_bytes);
      ++next;
      continue;
    }
    // Zeros (either sign) drop safely; anything else is a value the layout cannot hold.
    const DType dtype = element_bytes_ == sizeof(float) ? DType::f32 : DType::bf16;
    for (int64_t k = 0; k < row_elements_; ++k) {
      if (element(row, dtype, k) != 0.f) {
        throw std::logic_error("RowSparseLayout::pack: row " + std::to_string(r) +
                               " holds a nonzero value but is not one of the layout's " +
                               std::to_string(rows_.size()) + " rows");
      }
    }
  }
}

bool RowSparseLayout::same_as(const PackedLayout& other) const {
  auto* o = dynamic_cast<const RowSparseLayout*>(&other);
  return o && o->dense_rows_ == dense_rows_ && o->row_elements_ == row_elements_ &&
         o->element_bytes_ == element_bytes_ && o->rows_ == rows_;
}

std::string RowSparseLayout::name() const {
  return "row_sparse(" + std::to_string(rows_.size()) + " of " + std::to_string(dense_rows_) + " rows)";
}

Tensor make_row_sparse(const Shape& dense_shape, std::vector<int32_t> rows, const Tensor& values) {
  if (dense_shape.empty()) throw std::invalid_argument("make_row_sparse: a row-sparse tensor needs rank >= 1");
  if (!values.defined() || !is_float_dtype(values.dtype())) {
    throw std::invalid_argument("make_row_sparse: values must be f32 or bf16, got " +
                                (values.defined() ? values.describe() : std::string("an undefined tensor")));
  }
  checked_nbytes(dense_shape, dtype_size(values.dtype()), "make_row_sparse");
  Shape want = dense_shape;
  want[0] = static_cast<int64_t>(rows.size());
  if (values.shape() != want) {
    throw std::invalid_argument("make_row_sparse: values " + values.describe() + " for " + std::to_string(rows.size()) +
                                " rows of " + shape_str(dense_shape) + " must be shaped " + shape_str(want));
  }
  const int64_t row_elements = dense_shape[0] == 0 ? 0 : numel(dense_shape) / dense_shape[0];
  auto layout = std::make_shared<const RowSparseLayout>(std::move(rows), dense_shape[0], row_elements,
                                                        dtype_size(values.dtype()));
  Tensor v = values.is_contiguous() && values.offset() == 0 && !values.is_packed() ? values : values.clone_detached();
  return wrap(dense_shape, values.dtype(), v.storage(), std::move(layout));
}

const RowSparseLayout* row_sparse_layout(const Tensor& t) {
  if (!t.defined() || !t.is_packed()) return nullptr;
  return dynamic_cast<const RowSparseLayout*>(t.packed_layout().get());
}

Tensor row_sparse_values(const Tensor& t) {
  const RowSparseLayout* layout = row_sparse_layout(t);
  if (!layout) throw std::invalid_argument("row_sparse_values: " + t.describe() + " is not row-sparse");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage();
  impl->shape = t.shape();
  impl->shape[0] = static_cast<int64_t>(layout->rows().size());
  impl->strides = contiguous_strides(impl->shape);
  impl->dtype = t.dtype();
  impl->id = next_tensor_id();
  return Tensor(std::move(impl));
}

Tensor row_sparse_cast(const Tensor& t, DType dtype) {
  const RowSparseLayout* layout = row_sparse_layout(t);
  if (!layout) throw std::invalid_argument("row_sparse_cast: " + t.describe() + " is not row-sparse");
  if (!is_float_dtype(dtype)) {
    throw std::invalid_argument("row_sparse_cast: a row-sparse tensor converts to f32 or bf16, not " +
                                std::string(dtype_name(dtype)));
  }
  if (dtype == t.dtype()) return t;
  Tensor src = row_sparse_values(t);
  Tensor out = Tensor::empty(src.shape(), dtype);
  const int64_t n = src.numel();
  for (int64_t i = 0; i < n; ++i) set_element(out.raw_data(), dtype, i, element(src.raw_data(), src.dtype(), i));
  return make_row_sparse(t.shape(), layout->rows(), out);
}

Tensor row_sparse_add(const Tensor& a, const Tensor& b) {
  const RowSparseLayout *la = row_sparse_layout(a), *lb = row_sparse_layout(b);
  if (!la || !lb || a.shape() != b.shape()) {
    throw std::invalid_argument("row_sparse_add: needs two row-sparse tensors of one shape, got " + a.describe() +
                                " and " + b.describe());
  }
  const std::vector<int32_t>&ra = la->rows(), &rb = lb->rows();
  std::vector<int32_t> rows;
  rows.reserve(ra.size() + rb.size());
  size_t i = 0, j = 0;
  while (i < ra.size() || j < rb.size()) {
    if (j == rb.size() || (i < ra.size() && ra[i] < rb[j])) {
      rows.push_back(ra[i++]);
    } else if (i == ra.size() || rb[j] < ra[i]) {
      rows.push_back(rb[j++]);
    } else {
      rows.push_back(ra[i]);
      ++i, ++j;
    }
  }
  const int64_t w = la->row_elements();
  Shape shape = a.shape();
  shape[0] = static_cast<int64_t>(rows.size());
  Tensor out = Tensor::empty(shape, a.dtype());
  const void *pa = a.packed_data(), *pb = b.packed_data();
  void* po = out.raw_data();
  i = j = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const bool in_a = i < ra.size() && ra[i] == rows[r], in_b = j < rb.size() && rb[j] == rows[r];
    for (int64_t k = 0; k < w; ++k) {
      float v = (in_a ? element(pa, a.dtype(), i * w + k) : 0.f) + (in_b ? element(pb, b.dtype(), j * w + k) : 0.f);
      set_element(po, a.dtype(), r * w + k, v);
    }
    i += in_a;
    j += in_b;
  }
  return make_row_sparse(a.shape(), std::move(rows), out);
}

}  // namespace kiln
