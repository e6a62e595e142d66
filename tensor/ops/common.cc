#include "tensor/ops/common.h"

#include <cstring>
#include <stdexcept>

#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/onednn/profiler.h"

namespace kiln::detail {
namespace {

bool has_zero_stride(const Tensor& t) {
  for (int i = 0; i < t.ndim(); ++i) {
    if (t.strides()[i] == 0 && t.shape()[i] > 1) return true;
  }
  return false;
}

template <typename T>
void copy_rows(const Tensor& src, Tensor& dst) {
  const int nd = src.ndim();
  const int64_t inner = src.shape()[nd - 1];
  const int64_t inner_stride = src.strides()[nd - 1];
  const int64_t rows = src.numel() / inner;
  const T* s = static_cast<const T*>(src.storage()->data()) + src.offset();
  T* d = static_cast<T*>(dst.raw_data());
#pragma omp parallel for if (rows * inner > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rem = r, pos = 0;
    for (int dim = nd - 2; dim >= 0; --dim) {
      pos += (rem % src.shape()[dim]) * src.strides()[dim];
      rem /= src.shape()[dim];
    }
    const T* in = s + pos;
    T* out = d + r * inner;
    if (inner_stride == 1) {
      std::memcpy(out, in, inner * sizeof(T));
    } else {
      for (int64_t i = 0; i < inner; ++i) out[i] = in[i * inner_stride];
    }
  }
}

}  // namespace

Tensor materialize(const Tensor& view) {
  Tensor out = Tensor::empty(view.shape(), view.dtype());
  if (view.numel() == 0) return out;
  onednn::profiler::KernelScope timed;
  if (view.ndim() == 0) {
    std::memcpy(out.raw_data(), view.raw_data(), dtype_size(view.dtype()));
    return out;
  }
  switch (dtype_size(view.dtype())) {
    case 1: copy_rows<uint8_t>(view, out); break;
    case 2: copy_rows<uint16_t>(view, out); break;
    case 4: copy_rows<uint32_t>(view, out); break;
    default: throw std::logic_error("materialize: unsupported element size");
  }
  return out;
}

Tensor dense(const Tensor& t) {
  if (t.is_packed()) return t.plain();
  if (t.is_contiguous()) return t;
  if (has_zero_stride(t) || t.numel() < 4096) return materialize(t);
  // Large strided views (transposes) go through oneDNN's parallel reorder, unless oneDNN
  // cannot describe the view: it rejects interleaved strides, as a step slice of the last
  // axis gives ([300, 167] with strides [500, 3]).
  dnnl::memory src;
  try {
    src = onednn::memory_of(t);
  } catch (const std::invalid_argument&) {
    return materialize(t);
  }
  Tensor out = Tensor::empty(t.shape(), t.dtype());
  onednn::reorder("contiguous", src, onednn::memory_of(out));
  return out;
}

void check_floating(const Tensor& t, const char* op) {
  check_defined(t, op, "input");
  if (!is_floating(t.dtype())) {
    throw std::invalid_argument(std::string(op) + ": expected a floating tensor (f32 or bf16), got " +
                                t.describe());
  }
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  if (a.dtype() != b.dtype()) {
    throw std::invalid_argument(std::string(op) + ": dtypes differ: " + a.describe() + " vs " +
                                b.describe() + " (cast one of them first)");
  }
}

void check_defined(const Tensor& t, const char* op, const char* what) {
  if (!t.defined()) throw std::invalid_argument(std::string(op) + ": " + what + " is an undefined tensor");
}

void check_rank(const Tensor& t, int rank, const char* op, const char* what) {
  check_defined(t, op, what);
  if (t.ndim() != rank) {
    throw std::invalid_argument(std::string(op) + ": " + what + " must have rank " + std::to_string(rank) +
                                ", got " + t.describe());
  }
}

}  // namespace kiln::detail
