#pragma once
#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace kiln::nn {

// Per-batch results [b, ...] gathered into one tensor [N, ...], each batch copied straight into
// its rows of one preallocated result: no list of batches and no concat at the end, so a run
// of any number of batches costs one allocation and one copy of each batch (how predict() and
// quantize's evaluation collect their outputs).
class BatchRows {
 public:
  // `what` names the caller in errors ("predict"). expected_rows sizes the result up front
  // (the exact count when it is known, as in predict(x)); 0 or less: expected_batches times the
  // first batch's rows. More rows than that still fit: the buffer then doubles.
  BatchRows(std::string what, int64_t expected_rows, int64_t expected_batches = 1);

  // Every batch must have the first one's dtype and dimensions after the first; a batch that
  // does not throws std::invalid_argument naming both.
  void append(const Tensor& batch);
  int64_t rows() const { return rows_; }
  // The rows so far, [rows, ...]; throws std::invalid_argument when nothing was appended.
  Tensor result() const;

 private:
  void reserve(int64_t rows);

  std::string what_;
  int64_t expected_rows_;
  int64_t expected_batches_;
  Tensor buffer_;  // [capacity, ...]
  int64_t rows_ = 0;
};

}  // namespace kiln::nn
