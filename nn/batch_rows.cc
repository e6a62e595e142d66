#include "nn/batch_rows.h"

#include <algorithm>
#include <stdexcept>

#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {
// Rows [begin, end) of a contiguous [capacity, ...] buffer, as a plain alias (never recorded).
Tensor rows_of(const Tensor& buffer, int64_t begin, int64_t end) {
  Shape shape = buffer.shape();
  shape[0] = end - begin;
  return buffer.alias(shape, buffer.strides(), begin * buffer.strides()[0]);
}
}  // namespace

BatchRows::BatchRows(std::string what, int64_t expected_rows, int64_t expected_batches)
    : what_(std::move(what)), expected_rows_(expected_rows), expected_batches_(std::max<int64_t>(expected_batches, 1)) {}

void BatchRows::reserve(int64_t rows) {
  const int64_t capacity = buffer_.shape()[0];
  if (rows <= capacity) return;
  Shape shape = buffer_.shape();
  shape[0] = std::max(rows, capacity * 2);
  Tensor grown = Tensor::empty(shape, buffer_.dtype());
  if (rows_ > 0) rows_of(grown, 0, rows_).copy_from(rows_of(buffer_, 0, rows_));
  buffer_ = grown;
}

void BatchRows::append(const Tensor& batch) {
  if (!batch.defined()) throw std::invalid_argument(what_ + ": a batch result is an undefined tensor");
  if (batch.ndim() < 1) throw std::invalid_argument(what_ + ": a batch result is a scalar, " + batch.describe());
  const int64_t n = batch.shape()[0];
  if (!buffer_.defined()) {
    Shape shape = batch.shape();
    shape[0] = expected_rows_ > 0 ? std::max(expected_rows_, n) : n * expected_batches_;
    buffer_ = Tensor::empty(shape, batch.dtype());
  } else if (batch.dtype() != buffer_.dtype() || batch.ndim() != buffer_.ndim() ||
             !std::equal(batch.shape().begin() + 1, batch.shape().end(), buffer_.shape().begin() + 1)) {
    throw std::invalid_argument(what_ + ": batch results differ beyond their first dimension: " + batch.describe() +
                                " after " + rows_of(buffer_, 0, rows_).describe() + " so far");
  }
  reserve(rows_ + n);
  rows_of(buffer_, rows_, rows_ + n).copy_from(batch.is_contiguous() ? batch : contiguous(batch));
  rows_ += n;
}

Tensor BatchRows::result() const {
  if (!buffer_.defined()) throw std::invalid_argument(what_ + ": no batches (the dataset is empty)");
  return rows_ == buffer_.shape()[0] ? buffer_ : rows_of(buffer_, 0, rows_);
}

}  // namespace kiln::nn
