#include "tensor/tensor.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "tensor/block_pool.h"

namespace kiln {

uint64_t next_tensor_id() {
  static std::atomic<uint64_t> counter{1};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

namespace {

// TensorImpls dropped on this thread, kept (at most kSpareImpls) with the capacity of their
// shape and strides vectors: a training step makes and drops the same few dozen tensors each
// time, and a fresh impl cost three heap allocations (impl, shape, strides) plus a control
// block; a recycled one with a pooled control block costs none. Sanitizer builds allocate
// afresh so that ASan sees uses after free.
constexpr int kSpareImpls = 256;
struct SpareImpls {  // trivially destructible: usable while thread_locals are destroyed
  TensorImpl* items[kSpareImpls];
  int count;
  bool closed;
};
thread_local SpareImpls spare_impls;

struct SpareCloser {
  ~SpareCloser() {
    spare_impls.closed = true;
    while (spare_impls.count > 0) delete spare_impls.items[--spare_impls.count];
  }
};

struct RecycleImpl {
  void operator()(TensorImpl* p) const {
    thread_local SpareCloser closer;
    (void)closer;
    if (spare_impls.closed || spare_impls.count == kSpareImpls) {
      delete p;
      return;
    }
    p->storage.reset();  // the data goes back to the caching allocator now, not at reuse
    p->packed.reset();
    spare_impls.items[spare_impls.count++] = p;
  }
};

// A TensorImpl with default fields except shape and strides, which the caller assigns.
std::shared_ptr<TensorImpl> new_impl() {
#ifdef KILN_SANITIZER
  return std::make_shared<TensorImpl>();
#else
  TensorImpl* p;
  if (spare_impls.count > 0) {
    p = spare_impls.items[--spare_impls.count];
    p->offset = 0;
    p->dtype = DType::f32;
    p->id = 0;
    p->trainable_variable = false;
  } else {
    p = new TensorImpl();
  }
  return std::shared_ptr<TensorImpl>(p, RecycleImpl{}, detail::PoolAllocator<TensorImpl>{});
#endif
}

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

namespace {
// Every op output comes through Tensor::empty: the message (a heap string) is built only
// when the shape is rejected.
uint64_t empty_nbytes(const Shape& shape, DType dtype) {
  uint64_t bytes;
  if (nbytes_fit(shape, dtype_size(dtype), &bytes)) return bytes;
  return checked_nbytes(shape, dtype_size(dtype), "Tensor::empty(" + std::string(dtype_name(dtype)) + ")");
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  uint64_t bytes = empty_nbytes(shape, dtype);
  auto impl = new_impl();
  impl->storage = allocate_storage(bytes);
  impl->shape = shape;
  contiguous_strides_into(impl->strides, shape);
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

bool Tensor::is_contiguous() const {
  // Compared in place: building the contiguous strides would allocate on every call.
  const TensorImpl& t = impl();
  if (t.packed) return false;
  int64_t expected = 1, n = 1;
  bool dense = true;
  for (size_t i = t.shape.size(); i-- > 0;) {
    dense = dense && t.strides[i] == expected;
    expected *= t.shape[i];
    n *= t.shape[i];
  }
  return dense || n <= 1;
}

void* Tensor::raw_data() const {
  if (impl().packed) {
    throw std::logic_error("tensor " + describe() +
                           " is stored in a packed (blocked) layout; read it through plain() (it was packed by "
                           "kiln::optimize)");
  }
  return static_cast<char*>(impl().storage->data()) + impl().offset * dtype_size(impl().dtype);
}

void* Tensor::packed_data() const {
  if (!impl().packed) throw std::logic_error("Tensor::packed_data: tensor " + describe() + " is not packed");
  return impl().storage->data();
}

Tensor Tensor::plain() const {
  if (!impl().packed) return *this;
  Tensor out = empty(shape(), dtype());
  impl().packed->unpack(packed_data(), out.raw_data());
  return out;
}

Tensor Tensor::empty_packed(const Shape& shape, DType dtype, std::shared_ptr<const PackedLayout> layout) {
  if (!layout) throw std::invalid_argument("Tensor::empty_packed: no layout");
  checked_nbytes(shape, dtype_size(dtype), "Tensor::empty_packed(" + std::string(dtype_name(dtype)) + ")");
  auto impl = new_impl();
  impl->storage = allocate_storage(layout->bytes());
  // Blocks overhang the logical shape; oneDNN expects the overhang to hold zeros.
  std::memset(impl->storage->data(), 0, layout->bytes());
  impl->shape = shape;
  contiguous_strides_into(impl->strides, shape);
  impl->dtype = dtype;
  impl->id = next_tensor_id();
  impl->packed = std::move(layout);
  return Tensor(std::move(impl));
}

void Tensor::relayout_from(const Tensor& values) const {
  if (values.shape() != shape() || values.dtype() != dtype()) {
    throw std::invalid_argument("Tensor::relayout_from: " + values.describe() + " cannot replace " + describe());
  }
  if (values.impl_ptr() == impl_ptr()) return;
  Tensor copy = values.is_packed() ? empty_packed(shape(), dtype(), values.packed_layout()) : values.clone_detached();
  if (values.is_packed()) std::memcpy(copy.packed_data(), values.packed_data(), values.packed_layout()->bytes());
  TensorImpl& self = impl();
  self.storage = copy.storage();
  self.offset = 0;
  self.strides = contiguous_strides(shape());
  self.packed = copy.packed_layout();
  // Caches keyed on (storage, version) must not mistake the new storage for a stale entry.
  self.storage->bump_version();
}

std::vector<float> Tensor::to_vector() const {
  if (is_packed()) return plain().to_vector();
  std::vector<float> out(numel());
  const void* base = static_cast<char*>(storage()->data());
  for_each_index(shape(), strides(), offset(), [&](int64_t i, int64_t pos) {
    out[i] = static_cast<float>(load_element(base, dtype(), pos));
  });
  return out;
}

std::vector<int32_t> Tensor::to_int32() const {
  if (is_packed()) return plain().to_int32();
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
  std::string s = std::string(dtype_name(dtype())) + shape_str(shape());
  if (is_packed()) s += " packed:" + packed_layout()->name();
  return s;
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
  // A packed tensor aliases only as a whole (stop_gradient); other geometry needs plain().
  bool whole = shape == this->shape() && offset == 0;
  if (is_packed() && !whole) {
    throw std::logic_error("Tensor::alias: tensor " + describe() + " is packed; alias plain() instead");
  }
  auto impl = new_impl();
  impl->storage = storage();
  impl->offset = offset;
  impl->shape = shape;
  impl->strides = strides;
  impl->dtype = dtype();
  impl->id = next_tensor_id();
  impl->packed = impl_->packed;
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
  if (is_packed()) {
    if (src.is_packed() && src.dtype() == dtype() && src.packed_layout()->same_as(*packed_layout())) {
      std::memmove(packed_data(), src.packed_data(), packed_layout()->bytes());
    } else {
      Tensor row_major = empty(shape(), dtype());
      row_major.copy_from(src);
      packed_layout()->pack(row_major.raw_data(), packed_data());
    }
    bump_version();
    return;
  }
  if (src.is_packed()) {
    copy_from(src.plain());
    return;
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
  if (is_packed()) {
    copy_from(full(shape(), value, dtype()));
    return;
  }
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
