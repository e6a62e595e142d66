#include "tensor/ops/cast.h"

#include "tensor/ops/recorder.h"
#include "tensor/ops/common.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"

namespace kiln {

Tensor cast(const Tensor& x, DType dtype) {
  detail::check_defined(x, "cast", "input");
  if (x.dtype() == dtype) return x;
  Tensor out = Tensor::empty(x.shape(), dtype);
  if (x.numel() == 0) return out;
  Tensor src = detail::dense(x);
  if (x.dtype() == DType::bf16 && dtype == DType::s32) {
    // oneDNN 2.6 has no bf16 -> s32 reorder; bf16 -> f32 is exact, so go through it.
    Tensor wide = Tensor::empty(x.shape(), DType::f32);
    onednn::reorder("cast", onednn::memory_of(src), onednn::memory_of(wide));
    src = wide;
  }
  onednn::reorder("cast", onednn::memory_of(src), onednn::memory_of(out));
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
