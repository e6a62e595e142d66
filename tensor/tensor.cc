#include "tensor/tensor.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace kiln {

uint64_t next_tensor_id() {
  static std::atomic<uint64_t> counter{1};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

namespace {
template <typename T> T saturate(double v) {
  if (std::isnan(v)) return 0;
  double r = std::nearbyint(v);
  if (r < std::numeric_limits<T>::min()) return std::numeric_limits<T>::min();
  if (r > std::numeric_limits<T>::max()) return std::numeric_limits<T>::max();
  return static_cast<T>(r);
}

// Visits every element's storage index of a strided view in row-major order.
template <typename F>
void for_each_index(const Shape& shape, const Strides& strides, int64_t offset, F&& f) {
  int64_t n = numel(shape);
  if (n == 0) return;
  int nd = static_cast<int>(shape.size());
  std::vector<int64_t> idx(nd, 0);
  int64_t pos = offset;
  for (int64_t i = 0; i < n; ++i) {
    f(i, pos);
    for (int d = nd - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        pos += strides[d];
        break;
      }
      pos -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}
}  // namespace

double load_element(const void* base, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::bf16: return static_cast<float>(static_cast<const bf16*>(base)[i]);
    case DType::s8: return static_cast<const int8_t*>(base)[i];
    case DType::u8: return static_cast<const uint8_t*>(base)[i];
    case DType::s32: return static_cast<const int32_t*>(base)[i];
  }
  return 0;
}

void store_element(void* base, DType dtype, int64_t i, double v) {
  switch (dtype) {
    case DType::f32: static_cast<float*>(base)[i] = static_cast<float>(v); break;
    case DType::bf16: static_cast<bf16*>(base)[i] = bf16(static_cast<float>(v)); break;
    case DType::s8: static_cast<int8_t*>(base)[i] = saturate<int8_t>(v); break;
    case DType::u8: static_cast<uint8_t*>(base)[i] = saturate<uint8_t>(v); break;
    case DType::s32: static_cast<int32_t*>(base)[i] = saturate<int32_t>(v); break;
  }
}

TensorImpl& Tensor::impl() const {
  if (!impl_) throw std::logic_error("use of an undefined (empty) Tensor");
  return *impl_;
}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  uint64_t bytes = checked_nbytes(shape, dtype_size(dtype), "Tensor::empty(" + std::string(dtype_name(dtype)) + ")");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = allocate_storage(bytes);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  impl->id = next_tensor_id();
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0f, dtype); }

Tensor Tensor::full(const Shape& shape, float value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill(value);
  return t;
}

Tensor Tensor::scalar(float value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, DType dtype) {
  if (static_cast<int64_t>(values.size()) != kiln::numel(shape)) {
    throw std::invalid_argument("Tensor::from_vector: " + std::to_string(values.size()) +
                                " values do not fill shape " + shape_str(shape));
  }
  Tensor t = empty(shape, dtype);
  if (dtype == DType::f32) {
    // An empty vector's data() may be null, which memcpy must not get even for 0 bytes.
    if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(float));
  } else {
    for (size_t i = 0; i < values.size(); ++i) store_element(t.raw_data(), dtype, i, values[i]);
  }
  return t;
}

Tensor Tensor::from_int32(const std::vector<int32_t>& values, const Shape& shape) {
  if (static_cast<int64_t>(values.size()) != kiln::numel(shape)) {
    throw std::invalid_argument("Tensor::from_int32: " + std::to_string(values.size()) +
                                " values do not fill shape " + shape_str(shape));
  }
  return from_bytes(values.data(), shape, DType::s32);
}

Tensor Tensor::from_bytes(const void* data, const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  if (t.nbytes()) std::memcpy(t.raw_data(), data, t.nbytes());
  return t;
}

int64_t Tensor::dim(int axis) const {
  return shape()[normalize_axis(axis, ndim(), shape(), "Tensor::dim")];
}

bool Tensor::is_contiguous() const { return strides() == contiguous_strides(shape()) || numel() <= 1; }

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + impl().offset * dtype_size(impl().dtype);
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> out(numel());
  const void* base = static_cast<char*>(storage()->data());
  for_each_index(shape(), strides(), offset(), [&](int64_t i, int64_t pos) {
    out[i] = static_cast<float>(load_element(base, dtype(), pos));
  });
  return out;
}

std::vector<int32_t> Tensor::to_int32() const {
  std::vector<int32_t> out(numel());
  const void* base = static_cast<char*>(storage()->data());
  for_each_index(shape(), strides(), offset(), [&](int64_t i, int64_t pos) {
    out[i] = static_cast<int32_t>(load_element(base, dtype(), pos));
  });
  return out;
}

float Tensor::item() const {
  if (numel() != 1) {
    throw std::invalid_argument("Tensor::item: tensor of shape " + shape_str(shape()) +
                                " has " + std::to_string(numel()) + " elements, not 1");
  }
  return to_vector()[0];
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape());
}

std::string Tensor::to_string(int64_t max_elements) const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(" << describe() << ", [";
  auto v = to_vector();
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()) && i < max_elements; ++i) {
    if (i) os << ", ";
    os << v[i];
  }
  if (static_cast<int64_t>(v.size()) > max_elements) os << ", ...";
  os << "])";
  return os.str();
}

Tensor Tensor::alias(const Shape& shape, const Strides& strides, int64_t offset) const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = storage();
  impl->offset = offset;
  impl->shape = shape;
  impl->strides = strides;
  impl->dtype = dtype();
  impl->id = next_tensor_id();
  return Tensor(std::move(impl));
}

Tensor Tensor::clone_detached() const {
  Tensor out = empty(shape(), dtype());
  out.copy_from(*this);
  return out;
}

void Tensor::copy_from(const Tensor& src) const {
  if (src.shape() != shape()) {
    throw std::invalid_argument("Tensor::copy_from: source " + src.describe() +
                                " does not match destination " + describe());
  }
  if (src.dtype() == dtype() && src.is_contiguous() && is_contiguous()) {
    if (nbytes()) std::memmove(raw_data(), src.raw_data(), nbytes());
  } else {
    std::vector<int64_t> dst_pos(numel());
    for_each_index(shape(), strides(), offset(), [&](int64_t i, int64_t pos) { dst_pos[i] = pos; });
    const void* sbase = src.storage()->data();
    void* dbase = storage()->data();
    for_each_index(src.shape(), src.strides(), src.offset(), [&](int64_t i, int64_t pos) {
      store_element(dbase, dtype(), dst_pos[i], load_element(sbase, src.dtype(), pos));
    });
  }
  bump_version();
}

void Tensor::fill(float value) const {
  int64_t n = numel();
  if (is_contiguous() && dtype() == DType::f32) {
    float* p = data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = value;
  } else if (is_contiguous() && dtype() == DType::bf16) {
    bf16* p = data<bf16>();
    bf16 v(value);
    for (int64_t i = 0; i < n; ++i) p[i] = v;
  } else {
    void* base = storage()->data();
    for_each_index(shape(), strides(), offset(),
                   [&](int64_t, int64_t pos) { store_element(base, dtype(), pos, value); });
  }
  bump_version();
}

void Tensor::check_dtype(DType expected, const char* op) const {
  if (dtype() != expected) {
    throw std::invalid_argument(std::string(op) + ": expected dtype " + dtype_name(expected) +
                                " but got " + describe());
  }
}

}  // namespace kiln
