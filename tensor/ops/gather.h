#pragma once
#include "tensor/tensor.h"

namespace kiln {

// ONNX Gather / numpy take / Keras ops.take on one axis: out = table[..., indices, ...], shaped
// table.shape[:axis] + indices.shape + table.shape[axis+1:]. indices: any integer dtype, any
// shape, each in [0, table.shape[axis]) (an index outside it throws std::out_of_range naming
// the index, its position and the bound; negative indices are refused, as tf.gather on the CPU
// does, not wrapped). table: any dtype; axis may be negative, from the end.
// The gradient goes to the table only: a scatter-add of the output gradient into the rows the
// indices used (duplicates add up), in the table's dtype (bf16 tables add up in f32 first).
// Gathered on axis 0 (an embedding lookup) the gradient is a row-sparse tensor
// (tensor/row_sparse.h) holding only those rows: no dense [rows, ...] temporary; on another
// axis it is dense.
Tensor gather(const Tensor& table, const Tensor& indices, int axis = 0);

}  // namespace kiln
