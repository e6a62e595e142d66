#include "tensor/ops/where.h"

#include <stdexcept>

#include "tensor/ops/broadcast_map.h"
#include "tensor/ops/common.h"
#include "tensor/ops/recorder.h"
#include "tensor/ops/reduce.h"

namespace kiln {

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  detail::check_defined(cond, "where", "condition");
  detail::check_defined(a, "where", "first input");
  detail::check_defined(b, "where", "second input");
  detail::check_same_dtype(a, b, "where");
  if (!is_floating(a.dtype())) {
    throw std::invalid_argument("where: expected f32 or bf16 values, got " + a.describe() + " and " + b.describe());
  }
  if (!is_floating(cond.dtype()) && cond.dtype() != DType::u8) {
    throw std::invalid_argument("where: the condition must be f32, bf16 or u8 (1/0), got " + cond.describe());
  }
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(shape, a.dtype());
  detail::broadcast_map<3>({&cond, &a, &b}, out, "where",
                           [](const std::array<float, 3>& v) { return v[0] != 0.f ? v[1] : v[2]; });
  if (autograd::should_record({&cond, &a, &b})) {
    Tensor kept_cond = cond;
    const Shape a_shape = a.shape(), b_shape = b.shape();
    const DType dtype = a.dtype();
    autograd::record("where", {cond, a, b}, {out}, [kept_cond, a_shape, b_shape, dtype](const std::vector<Tensor>& g) {
      const Tensor zero = Tensor::zeros({}, dtype);
      Tensor ga = autograd::needs_input_grad(1) ? sum_to_shape(where(kept_cond, g[0], zero), a_shape) : Tensor();
      Tensor gb = autograd::needs_input_grad(2) ? sum_to_shape(where(kept_cond, zero, g[0]), b_shape) : Tensor();
      return std::vector<Tensor>{Tensor(), ga, gb};
    });
  }
  return out;
}

}  // namespace kiln
