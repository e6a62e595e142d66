#include "tensor/shape.h"

#include <stdexcept>

namespace kiln {

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n)) {
      throw std::overflow_error("the element count of shape " + shape_str(shape) + " overflows int64");
    }
  }
  return n;
}

bool nbytes_fit(const Shape& shape, size_t element_size, uint64_t* bytes) {
  // Bytes must also fit a signed 64-bit offset, so the product is checked in int64. Zero dims
  // are skipped in the overflow check: strides of an empty tensor still multiply the other
  // dims, so they must fit too (numpy rejects such shapes for the same reason).
  int64_t n = static_cast<int64_t>(element_size);
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) return false;
    empty = empty || d == 0;
    if (d != 0 && __builtin_mul_overflow(n, d, &n)) return false;
  }
  *bytes = empty ? 0 : static_cast<uint64_t>(n);
  return true;
}

uint64_t checked_nbytes(const Shape& shape, size_t element_size, const std::string& what) {
  uint64_t bytes;
  if (nbytes_fit(shape, element_size, &bytes)) return bytes;
  for (int64_t d : shape) {
    if (d < 0) throw std::invalid_argument(what + ": negative dimension in shape " + shape_str(shape));
  }
  throw std::invalid_argument(what + ": shape " + shape_str(shape) + " with " + std::to_string(element_size) +
                              "-byte elements needs more bytes than fit in 64 bits");
}

Strides contiguous_strides(const Shape& shape) {
  Strides strides;
  contiguous_strides_into(strides, shape);
  return strides;
}

void contiguous_strides_into(Strides& strides, const Shape& shape) {
  strides.resize(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int normalize_axis(int64_t axis, int ndim, const Shape& shape, const char* op) {
  int64_t a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim) {
    throw std::out_of_range(std::string(op) + ": axis " + std::to_string(axis) +
                            " is out of range for a tensor of shape " + shape_str(shape));
  }
  return static_cast<int>(a);
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) {
      throw std::invalid_argument(std::string(op) + ": shapes " + shape_str(a) + " and " +
                                  shape_str(b) + " cannot be broadcast together");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

void check_shape_valid(const Shape& shape, const char* op) { checked_nbytes(shape, 1, op); }

}  // namespace kiln
