#include "tensor/ops/cast.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "tensor/bf16.h"
#include "tensor/row_sparse.h"
#include "tensor/ops/recorder.h"
#include "tensor/ops/common.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"

namespace kiln {
namespace {

// Toward zero, saturating, NaN -> 0 (cast.h). oneDNN's reorder would round to nearest instead.
template <typename From, typename To>
void truncate_to_integer(const Tensor& src, Tensor& out) {
  const From* in = src.data<From>();
  To* y = out.data<To>();
  const int64_t n = src.numel();
  constexpr double lo = std::numeric_limits<To>::min(), hi = std::numeric_limits<To>::max();
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    const double v = static_cast<float>(in[i]);
    // Clamped in double, where every bound is exact, the value converts without overflow and
    // the conversion itself truncates.
    y[i] = std::isnan(v) ? To{0} : static_cast<To>(std::fmin(hi, std::fmax(lo, v)));
  }
}

template <typename From>
void truncate_from(const Tensor& src, Tensor& out) {
  switch (out.dtype()) {
    case DType::s8: return truncate_to_integer<From, int8_t>(src, out);
    case DType::u8: return truncate_to_integer<From, uint8_t>(src, out);
    case DType::s32: return truncate_to_integer<From, int32_t>(src, out);
    default: throw std::logic_error(std::string("cast: no truncating cast to ") + dtype_name(out.dtype()));
  }
}

}  // namespace

Tensor cast(const Tensor& x, DType dtype) {
  detail::check_defined(x, "cast", "input");
  if (x.dtype() == dtype) return x;
  // A row-sparse tensor (an embedding's gradient) converts its stored rows and stays sparse.
  const bool row_sparse = is_row_sparse(x) && is_floating(dtype);
  Tensor out = row_sparse ? row_sparse_cast(x, dtype) : Tensor::empty(x.shape(), dtype);
  if (!row_sparse) {
    if (x.numel() == 0) return out;
    Tensor src = detail::dense(x);
    if (is_floating(x.dtype()) && !is_floating(dtype)) {
      if (x.dtype() == DType::bf16) {
        truncate_from<bf16>(src, out);
      } else {
        truncate_from<float>(src, out);
      }
    } else {
      onednn::reorder("cast", onednn::memory_of(src), onednn::memory_of(out));
    }
  }
  ops::Attrs call("cast");
  call.set("dtype", dtype_name(dtype));
  if (is_floating(x.dtype()) && is_floating(dtype) && autograd::should_record({&x})) {
    DType in_dtype = x.dtype();
    autograd::record(call, {x}, {out}, [in_dtype](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{cast(g[0], in_dtype)};
    });
  } else {
    autograd::observe(call, {x}, {out});  // integer casts have no gradient but belong in a trace
  }
  return out;
}

}  // namespace kiln
