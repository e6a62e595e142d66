#include "tensor/ops/fused.h"

#include <stdexcept>

#include "tensor/ops/binary.h"
#include "tensor/ops/eltwise.h"
#include "tensor/ops/recorder.h"

namespace kiln {

EltwiseKind epilogue_eltwise(Epilogue e) {
  switch (e) {
    case Epilogue::none:
    case Epilogue::relu: return EltwiseKind::relu;
    case Epilogue::gelu_erf: return EltwiseKind::gelu_erf;
    case Epilogue::gelu_tanh: return EltwiseKind::gelu_tanh;
    case Epilogue::relu6: return EltwiseKind::relu6;
    case Epilogue::hard_sigmoid: return EltwiseKind::hard_sigmoid;
    case Epilogue::hard_swish: return EltwiseKind::hard_swish;
    case Epilogue::mish: return EltwiseKind::mish;
  }
  throw std::invalid_argument("epilogue_eltwise: unknown epilogue");
}

const char* epilogue_name(Epilogue e) { return e == Epilogue::none ? "none" : eltwise_name(epilogue_eltwise(e)); }

std::vector<Epilogue> all_epilogues() {
  return {Epilogue::none,  Epilogue::relu,         Epilogue::gelu_erf,   Epilogue::gelu_tanh,
          Epilogue::relu6, Epilogue::hard_sigmoid, Epilogue::hard_swish, Epilogue::mish};
}

Epilogue epilogue_from_name(const std::string& name) {
  std::string expected;
  for (Epilogue e : all_epilogues()) {
    if (name == epilogue_name(e)) return e;
    expected += std::string(expected.empty() ? "'" : ", '") + epilogue_name(e) + "'";
  }
  throw std::invalid_argument("unknown fused activation '" + name + "' (expected one of " + expected + ")");
}

namespace {

Tensor epilogue(Tensor y, const Tensor& residual, Epilogue activation, const char* op) {
  if (residual.defined()) {
    if (residual.shape() != y.shape()) {
      throw std::invalid_argument(std::string(op) + ": residual " + shape_str(residual.shape()) +
                                  " does not match the output " + shape_str(y.shape()));
    }
    y = add(y, residual);
  }
  return activation == Epilogue::none ? y : eltwise(epilogue_eltwise(activation), y);
}

}  // namespace

namespace detail {
std::vector<Tensor> present(std::initializer_list<Tensor> inputs) {
  std::vector<Tensor> out;
  for (const Tensor& t : inputs) {
    if (t.defined()) out.push_back(t);
  }
  return out;
}
}  // namespace detail

ops::Attrs fused_conv2d_attrs(const Conv2dAttrs& conv, Epilogue activation) {
  Conv2dAttrs plain = conv;
  plain.activation = FusedActivation::none;
  ops::Attrs a = to_attrs(plain);
  a.set_op("fused_conv2d");
  a.set("activation", epilogue_name(activation));
  return a;
}

ops::Attrs fused_linear_attrs(Epilogue activation) {
  return ops::Attrs("fused_linear").set("activation", epilogue_name(activation));
}

Tensor fused_conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual,
                    const Conv2dAttrs& conv, Epilogue activation) {
  if (conv.activation != FusedActivation::none) {
    throw std::invalid_argument("fused_conv2d: the activation belongs to the epilogue, not to the conv attributes");
  }
  if (!bias.defined() && residual.defined()) {
    throw std::invalid_argument("fused_conv2d: a residual needs a bias input before it (use zeros)");
  }
  Tensor y;
  {
    autograd::QuietScope quiet;
    y = epilogue(conv2d(x, w, bias, conv), residual, activation, "fused_conv2d");
  }
  autograd::observe(fused_conv2d_attrs(conv, activation), detail::present({x, w, bias, residual}), {y});
  return y;
}

Tensor fused_linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual,
                    Epilogue activation) {
  if (!bias.defined() && residual.defined()) {
    throw std::invalid_argument("fused_linear: a residual needs a bias input before it (use zeros)");
  }
  Tensor y;
  {
    autograd::QuietScope quiet;
    y = epilogue(linear(x, w, bias), residual, activation, "fused_linear");
  }
  autograd::observe(fused_linear_attrs(activation), detail::present({x, w, bias, residual}), {y});
  return y;
}

}  // namespace kiln
