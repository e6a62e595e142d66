#include "tensor/ops/erf.h"

#include <cmath>
#include <stdexcept>

#include "tensor/ops/binary.h"
#include "tensor/ops/broadcast_map.h"
#include "tensor/ops/common.h"
#include "tensor/ops/eltwise.h"
#include "tensor/ops/recorder.h"

namespace kiln {

Tensor erf(const Tensor& x) {
  detail::check_defined(x, "erf", "input");
  if (!is_floating(x.dtype())) throw std::invalid_argument("erf: expected f32 or bf16 input, got " + x.describe());
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  detail::broadcast_map<1>({&x}, out, "erf", [](const std::array<float, 1>& v) { return std::erf(v[0]); });
  if (autograd::should_record({&x})) {
    autograd::record("erf", {x}, {out}, [x](const std::vector<Tensor>& g) {
      constexpr float kTwoOverSqrtPi = 1.1283791670955126f;
      return std::vector<Tensor>{g[0] * (exp(-square(x)) * kTwoOverSqrtPi)};
    });
  }
  return out;
}

}  // namespace kiln
