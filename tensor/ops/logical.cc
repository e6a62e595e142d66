#include "tensor/ops/logical.h"

#include <stdexcept>

#include "tensor/ops/broadcast_map.h"
#include "tensor/ops/common.h"
#include "tensor/ops/recorder.h"

namespace kiln {
namespace {

void check_floating_input(const Tensor& x, const char* op) {
  if (!is_floating(x.dtype())) {
    throw std::invalid_argument(std::string(op) + ": expected f32 or bf16 (1/0) input, got " + x.describe());
  }
}

template <typename F>
Tensor logical_binary(const char* op, const Tensor& a, const Tensor& b, F f) {
  detail::check_defined(a, op, "first input");
  detail::check_defined(b, op, "second input");
  detail::check_same_dtype(a, b, op);
  check_floating_input(a, op);
  Tensor out = Tensor::empty(broadcast_shapes(a.shape(), b.shape(), op), a.dtype());
  detail::broadcast_map<2>({&a, &b}, out, op, [f](const std::array<float, 2>& v) {
    return f(v[0] != 0.f, v[1] != 0.f) ? 1.f : 0.f;
  });
  if (autograd::observing()) autograd::observe(ops::Attrs(op), {a, b}, {out});
  return out;
}

}  // namespace

Tensor logical_not(const Tensor& x) {
  detail::check_defined(x, "logical_not", "input");
  check_floating_input(x, "logical_not");
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  detail::broadcast_map<1>({&x}, out, "logical_not", [](const std::array<float, 1>& v) { return v[0] != 0.f ? 0.f : 1.f; });
  if (autograd::observing()) autograd::observe(ops::Attrs("logical_not"), {x}, {out});
  return out;
}

Tensor logical_and(const Tensor& a, const Tensor& b) {
  return logical_binary("logical_and", a, b, [](bool x, bool y) { return x && y; });
}

Tensor logical_or(const Tensor& a, const Tensor& b) {
  return logical_binary("logical_or", a, b, [](bool x, bool y) { return x || y; });
}

}  // namespace kiln
