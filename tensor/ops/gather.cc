#include "tensor/ops/gather.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/row_sparse.h"
#include "tensor/onednn/profiler.h"
#include "tensor/ops/common.h"
#include "tensor/ops/recorder.h"

namespace kiln {
namespace {

// The table seen as [outer, rows, inner] around the gathered axis.
struct GatherGeometry {
  int64_t outer = 1, rows = 0, inner = 1;
  int axis = 0;
};

GatherGeometry geometry(const Shape& table, int axis_in, const char* op) {
  const int rank = static_cast<int>(table.size());
  if (rank == 0) throw std::invalid_argument(std::string(op) + ": the table must have rank >= 1, got a scalar");
  if (axis_in < -rank || axis_in >= rank) {
    throw std::invalid_argument(std::string(op) + ": axis " + std::to_string(axis_in) + " is outside [" +
                                std::to_string(-rank) + ", " + std::to_string(rank) + ") for a table of shape " +
                                shape_str(table));
  }
  GatherGeometry g;
  g.axis = axis_in < 0 ? axis_in + rank : axis_in;
  for (int i = 0; i < g.axis; ++i) g.outer *= table[i];
  g.rows = table[g.axis];
  for (int i = g.axis + 1; i < rank; ++i) g.inner *= table[i];
  return g;
}

// The indices as int32, each checked against the bound.
std::vector<int32_t> checked_indices(const Tensor& indices, int64_t rows, const Tensor& table) {
  if (is_floating(indices.dtype())) {
    throw std::invalid_argument("gather: indices must be integers (s32, u8, s8), got " + indices.describe());
  }
  std::vector<int32_t> ids = detail::dense(indices).to_int32();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= rows) {
      throw std::out_of_range("gather: index " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                              " of indices " + indices.describe() + " is outside [0, " + std::to_string(rows) +
                              ") for table " + table.describe());
    }
  }
  return ids;
}

// d_table[o, ids[j], :] += grad[o, j, :]. Threads split the inner (feature) axis, so that
// repeated indices never race and each thread writes its own columns.
template <typename Acc, typename G>
void scatter_add(Acc* dst, const G* grad, const std::vector<int32_t>& ids, const GatherGeometry& g) {
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t chunk = 64;
  const int64_t chunks = (g.inner + chunk - 1) / chunk;
#pragma omp parallel for collapse(2) schedule(static) if (g.outer * n * g.inner > (1 << 16))
  for (int64_t o = 0; o < g.outer; ++o) {
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t begin = c * chunk, end = std::min(g.inner, begin + chunk);
      for (int64_t j = 0; j < n; ++j) {
        Acc* d = dst + (o * g.rows + ids[j]) * g.inner;
        const G* s = grad + (o * n + j) * g.inner;
        for (int64_t k = begin; k < end; ++k) d[k] += static_cast<float>(s[k]);
      }
    }
  }
}

Tensor gather_backward(const Tensor& grad_in, const std::vector<int32_t>& ids, const Shape& table_shape,
                       DType dtype, const GatherGeometry& g) {
  onednn::profiler::KernelScope timed;
  Tensor grad = detail::dense(grad_in);
  Tensor acc = Tensor::zeros(table_shape, DType::f32);
  if (grad.dtype() == DType::f32) {
    scatter_add(acc.data<float>(), grad.data<float>(), ids, g);
  } else {
    scatter_add(acc.data<float>(), grad.data<bf16>(), ids, g);
  }
  if (dtype == DType::f32) return acc;
  Tensor out = Tensor::empty(table_shape, dtype);
  out.copy_from(acc);
  return out;
}

// The gradient of a table gathered on its first axis, row-sparse (tensor/row_sparse.h): only
// the rows the indices used, each the sum of its occurrences' output-gradient rows. The rows
// are summed in f32 in index order, starting from zero, as the dense scatter-add does, so the
// two give the same bits; then rounded to the table's dtype. No [rows, ...] temporary.
Tensor gather_backward_rows(const Tensor& grad_in, const std::vector<int32_t>& ids, const Shape& table_shape,
                            DType dtype, const GatherGeometry& g) {
  onednn::profiler::KernelScope timed;
  Tensor grad = detail::dense(grad_in);
  const int64_t n = static_cast<int64_t>(ids.size());
  std::vector<int32_t> order(ids.size());
  for (int64_t j = 0; j < n; ++j) order[j] = static_cast<int32_t>(j);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return ids[a] < ids[b]; });
  std::vector<int32_t> rows;
  std::vector<int64_t> first;  // rows[r] gathers order[first[r] .. first[r + 1])
  for (int64_t k = 0; k < n; ++k) {
    if (k == 0 || ids[order[k]] != ids[order[k - 1]]) {
      rows.push_back(ids[order[k]]);
      first.push_back(k);
    }
  }
  first.push_back(n);
  const int64_t used = static_cast<int64_t>(rows.size());
  Shape values_shape = table_shape;
  values_shape[0] = used;
  Tensor acc = Tensor::empty(values_shape, DType::f32);
  float* dst = acc.data<float>();
  const bool f32_grad = grad.dtype() == DType::f32;
  const void* src = grad.raw_data();
#pragma omp parallel for schedule(static) if (n * g.inner > (1 << 16))
  for (int64_t r = 0; r < used; ++r) {
    float* d = dst + r * g.inner;
    std::fill(d, d + g.inner, 0.f);
    for (int64_t k = first[r]; k < first[r + 1]; ++k) {
      const int64_t row = static_cast<int64_t>(order[k]) * g.inner;
      if (f32_grad) {
        const float* s = static_cast<const float*>(src) + row;
        for (int64_t e = 0; e < g.inner; ++e) d[e] += s[e];
      } else {
        const bf16* s = static_cast<const bf16*>(src) + row;
        for (int64_t e = 0; e < g.inner; ++e) d[e] += static_cast<float>(s[e]);
      }
    }
  }
  if (dtype == DType::f32) return make_row_sparse(table_shape, std::move(rows), acc);
  Tensor values = Tensor::empty(values_shape, dtype);
  values.copy_from(acc);
  return make_row_sparse(table_shape, std::move(rows), values);
}

}  // namespace

Tensor gather(const Tensor& table, const Tensor& indices, int axis) {
  const char* op = "gather";
  detail::check_defined(table, op, "table");
  detail::check_defined(indices, op, "indices");
  const GatherGeometry g = geometry(table.shape(), axis, op);
  std::vector<int32_t> ids = checked_indices(indices, g.rows, table);
  Shape out_shape(table.shape().begin(), table.shape().begin() + g.axis);
  out_shape.insert(out_shape.end(), indices.shape().begin(), indices.shape().end());
  out_shape.insert(out_shape.end(), table.shape().begin() + g.axis + 1, table.shape().end());
  Tensor src = detail::dense(table);
  Tensor out = Tensor::empty(out_shape, table.dtype());
  {
    onednn::profiler::KernelScope timed;
    const size_t row_bytes = static_cast<size_t>(g.inner) * dtype_size(table.dtype());
    const auto* s = static_cast<const char*>(src.raw_data());
    auto* d = static_cast<char*>(out.raw_data());
    const int64_t n = static_cast<int64_t>(ids.size());
#pragma omp parallel for collapse(2) schedule(static) if (g.outer * n * static_cast<int64_t>(row_bytes) > (1 << 18))
    for (int64_t o = 0; o < g.outer; ++o) {
      for (int64_t j = 0; j < n; ++j) {
        std::memcpy(d + (o * n + j) * row_bytes, s + (o * g.rows + ids[j]) * row_bytes, row_bytes);
      }
    }
  }
  if (autograd::should_record({&table, &indices})) {
    const Shape table_shape = table.shape();
    const DType dtype = table.dtype();
    const bool differentiable = is_floating(dtype);
    auto shared_ids = std::make_shared<const std::vector<int32_t>>(std::move(ids));
    ops::Attrs call(op);
    call.set("axis", g.axis);
    autograd::record(call, {table, indices}, {out}, [=](const std::vector<Tensor>& grads) -> std::vector<Tensor> {
      if (!differentiable || !autograd::needs_input_grad(0)) return {Tensor(), Tensor()};
      // On the first axis (embedding lookups) the gradient is row-sparse; on another axis one
      // index's values are strided through the table, and the gradient is dense.
      Tensor d_table = g.axis == 0 ? gather_backward_rows(grads[0], *shared_ids, table_shape, dtype, g)
                                    : gather_backward(grads[0], *shared_ids, table_shape, dtype, g);
      autograd::record_without_second_order("gather_backward", {grads[0]}, {d_table});
      return {d_table, Tensor()};
    });
  }
  return out;
}

}  // namespace kiln
