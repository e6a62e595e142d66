#include "tensor/ops/quantized.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "tensor/ops/binary.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/recorder.h"

namespace kiln {
namespace {

void check_scale(float scale, const char* op) { check_quant_scale(scale, std::string(op) + ": scale"); }

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

bool is_int8(DType d) { return d == DType::u8 || d == DType::s8; }

Tensor dequantize_weights(const Tensor& w, const std::vector<float>& scales, const char* op) {
  if (w.dtype() != DType::s8) throw std::invalid_argument(std::string(op) + ": weights must be s8, got " + w.describe());
  const int64_t channels = w.shape().back();
  if (static_cast<int64_t>(scales.size()) != channels) {
    throw std::invalid_argument(std::string(op) + ": " + std::to_string(scales.size()) + " weight scales for " +
                                std::to_string(channels) + " output channels (" + w.describe() + ")");
  }
  std::vector<float> v = w.to_vector();
  for (size_t i = 0; i < v.size(); ++i) v[i] *= scales[i % channels];
  return Tensor::from_vector(v, w.shape());
}

Tensor epilogue_out(const Tensor& y, const QuantizedEpilogue& q, const char* op) {
  if (q.out_dtype == DType::f32) return y;
  if (!is_int8(q.out_dtype)) {
    throw std::invalid_argument(std::string(op) + ": out_dtype must be u8, s8 or f32, got " + dtype_name(q.out_dtype));
  }
  return quantize_linear(y, q.out_scale, 0, q.out_dtype);
}

void check_input(const Tensor& x, const QuantizedEpilogue& q, const char* op) {
  if (!x.defined() || !is_int8(x.dtype())) {
    throw std::invalid_argument(std::string(op) + ": input must be u8 or s8, got " +
                                (x.defined() ? x.describe() : std::string("an undefined tensor")));
  }
  check_quantized_epilogue(q, -1, op);
}

Tensor dequantized_residual(const Tensor& r, const QuantizedEpilogue& q, const char* op) {
  if (!r.defined()) return r;
  if (!is_int8(r.dtype())) throw std::invalid_argument(std::string(op) + ": residual must be u8 or s8, got " + r.describe());
  return dequantize_linear(r, q.residual_scale, 0);
}

void set_epilogue(ops::Attrs& a, const QuantizedEpilogue& q) {
  a.set("activation", epilogue_name(q.activation));
  a.set("x_scale", q.x_scale);
  a.set("w_scales", std::vector<double>(q.w_scales.begin(), q.w_scales.end()));
  a.set("residual_scale", q.residual_scale);
  a.set("out_scale", q.out_scale);
  a.set("out_dtype", dtype_name(q.out_dtype));
}

}  // namespace

Tensor quantize_linear(const Tensor& x, float scale, int32_t zero_point, DType dtype) {
  check_scale(scale, "quantize_linear");
  if (!is_int8(dtype)) throw std::invalid_argument(std::string("quantize_linear: dtype must be u8 or s8, got ") + dtype_name(dtype));
  if (!x.defined() || (x.dtype() != DType::f32 && x.dtype() != DType::bf16)) {
    throw std::invalid_argument("quantize_linear: input must be f32 or bf16, got " +
                                (x.defined() ? x.describe() : std::string("an undefined tensor")));
  }
  const double lo = dtype == DType::u8 ? 0 : -128, hi = dtype == DType::u8 ? 255 : 127;
  check_zero_point(zero_point, dtype, "quantize_linear: zero point");
  std::vector<float> v = x.to_vector();
  for (float& e : v) {
    // NaN has no integer: it becomes the zero point, as in ONNX Runtime's saturation.
    double q = std::isnan(e) ? zero_point : std::nearbyint(static_cast<double>(e) / scale) + zero_point;
    e = static_cast<float>(std::min(hi, std::max(lo, q)));
  }
  Tensor out = Tensor::from_vector(v, x.shape(), dtype);
  autograd::observe(ops::Attrs("quantize_linear").set("scale", scale).set("zero_point", zero_point).set("dtype", dtype_name(dtype)),
                    {x}, {out});
  return out;
}

Tensor dequantize_linear(const Tensor& q, float scale, int32_t zero_point) {
  check_scale(scale, "dequantize_linear");
  if (!q.defined() || !is_int8(q.dtype())) {
    throw std::invalid_argument("dequantize_linear: input must be u8 or s8, got " +
                                (q.defined() ? q.describe() : std::string("an undefined tensor")));
  }
  check_zero_point(zero_point, q.dtype(), "dequantize_linear: zero point");
  std::vector<float> v = q.to_vector();
  for (float& e : v) e = static_cast<float>((static_cast<double>(e) - zero_point) * scale);
  Tensor out = Tensor::from_vector(v, q.shape());
  autograd::observe(ops::Attrs("dequantize_linear").set("scale", scale).set("zero_point", zero_point), {q}, {out});
  return out;
}

ops::Attrs qconv2d_attrs(const Conv2dAttrs& conv, const QuantizedEpilogue& q) {
  Conv2dAttrs plain = conv;
  plain.activation = FusedActivation::none;
  ops::Attrs a = to_attrs(plain);
  a.set_op("qconv2d");
  set_epilogue(a, q);
  return a;
}

ops::Attrs qlinear_attrs(const QuantizedEpilogue& q) {
  ops::Attrs a("qlinear");
  set_epilogue(a, q);
  return a;
}

QuantizedEpilogue quantized_epilogue_from(const ops::Attrs& a) {
  QuantizedEpilogue q;
  q.activation = epilogue_from_name(a.get_string("activation"));
  auto scale = [&](double v, const std::string& name) {
    check_quant_scale(v, a.op() + ": " + name);
    return static_cast<float>(v);
  };
  q.x_scale = scale(a.get_float("x_scale"), "x_scale");
  const std::vector<double>& w_scales = a.get_floats("w_scales");
  for (size_t i = 0; i < w_scales.size(); ++i) q.w_scales.push_back(scale(w_scales[i], "w_scales[" + std::to_string(i) + "]"));
  q.residual_scale = scale(a.get_float("residual_scale"), "residual_scale");
  q.out_scale = scale(a.get_float("out_scale"), "out_scale");
  q.out_dtype = dtype_from_name(a.get_string("out_dtype"));
  check_quantized_epilogue(q, -1, a.op());
  return q;
}

void check_quant_scale(double scale, const std::string& what) {
  // Compared as a double first: converting one past float's range is undefined, not inf.
  if (!(scale > 0) || !(scale <= std::numeric_limits<float>::max()) || static_cast<float>(scale) == 0.f) {
    throw std::invalid_argument(what + " must be finite and positive as a float, got " + number(scale));
  }
}

void check_zero_point(int64_t zero_point, DType dtype, const std::string& what) {
  if (!is_int8(dtype)) throw std::invalid_argument(what + ": dtype must be u8 or s8, got " + dtype_name(dtype));
  const int64_t lo = dtype == DType::u8 ? 0 : -128, hi = dtype == DType::u8 ? 255 : 127;
  if (zero_point < lo || zero_point > hi) {
    throw std::invalid_argument(what + " " + std::to_string(zero_point) + " is outside " + dtype_name(dtype) + " [" +
                                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
}

void check_quantized_epilogue(const QuantizedEpilogue& q, int64_t channels, const std::string& what) {
  check_quant_scale(q.x_scale, what + ": x_scale");
  check_quant_scale(q.residual_scale, what + ": residual_scale");
  for (size_t i = 0; i < q.w_scales.size(); ++i) check_quant_scale(q.w_scales[i], what + ": w_scales[" + std::to_string(i) + "]");
  if (channels >= 0 && static_cast<int64_t>(q.w_scales.size()) != channels) {
    throw std::invalid_argument(what + ": " + std::to_string(q.w_scales.size()) + " weight scales for " +
                                std::to_string(channels) + " output channels");
  }
  check_quant_scale(q.out_scale, what + ": out_scale");
  if (q.out_dtype != DType::f32 && !is_int8(q.out_dtype)) {
    throw std::invalid_argument(what + ": out_dtype must be u8, s8 or f32, got " + dtype_name(q.out_dtype));
  }
}

Tensor qconv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual, const Conv2dAttrs& conv,
               const QuantizedEpilogue& q) {
  check_input(x, q, "qconv2d");
  Tensor y;
  {
    autograd::QuietScope quiet;
    Conv2dAttrs plain = conv;
    plain.activation = FusedActivation::none;
    Tensor b = bias.defined() ? bias : Tensor::zeros({w.shape().back()});
    y = fused_conv2d(dequantize_linear(x, q.x_scale, 0), dequantize_weights(w, q.w_scales, "qconv2d"), b,
                     dequantized_residual(residual, q, "qconv2d"), plain, q.activation);
    y = epilogue_out(y, q, "qconv2d");
  }
  autograd::observe(qconv2d_attrs(conv, q), detail::present({x, w, bias, residual}), {y});
  return y;
}

Tensor qlinear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual,
               const QuantizedEpilogue& q) {
  check_input(x, q, "qlinear");
  Tensor y;
  {
    autograd::QuietScope quiet;
    Tensor b = bias.defined() ? bias : Tensor::zeros({w.shape().back()});
    y = fused_linear(dequantize_linear(x, q.x_scale, 0), dequantize_weights(w, q.w_scales, "qlinear"), b,
                     dequantized_residual(residual, q, "qlinear"), q.activation);
    y = epilogue_out(y, q, "qlinear");
  }
  autograd::observe(qlinear_attrs(q), detail::present({x, w, bias, residual}), {y});
  return y;
}

}  // namespace kiln
