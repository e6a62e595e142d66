#pragma once
#include <cstdint>
#include <vector>

#include "tensor/ops/attrs.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/fused.h"
#include "tensor/tensor.h"

namespace kiln {

// Per-tensor linear quantization of activations, as ONNX QuantizeLinear / DequantizeLinear:
//   q = saturate(round_half_to_even(x / scale) + zero_point)   (u8 or s8)
//   x = (q - zero_point) * scale                                 (f32)
Tensor quantize_linear(const Tensor& x, float scale, int32_t zero_point, DType dtype);
Tensor dequantize_linear(const Tensor& q, float scale, int32_t zero_point);

// How an integer conv or dense reads and writes its data. Activations are symmetric (zero
// point 0): u8 where they cannot be negative (after ReLU), s8 elsewhere. Weights are s8, one
// scale per output channel (the kernel's last axis).
struct QuantizedEpilogue {
  float x_scale = 1.f;
  std::vector<float> w_scales;
  float residual_scale = 1.f;  // of the optional int8 residual, added before the activation
  Epilogue activation = Epilogue::none;
  float out_scale = 1.f;       // ignored when out_dtype is f32
  DType out_dtype = DType::f32;
};

// y = act(conv(x * x_scale, w * w_scales) + bias + residual * residual_scale), then quantized
// with out_scale to out_dtype (u8/s8), or returned as f32. These eager versions dequantize,
// run the float op and quantize: they define what the int8 oneDNN kernels of InferenceModel
// compute (which may differ by one quantization step where rounding ties fall differently).
// Inference-only: recorded as one node, with no gradient.
Tensor qconv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual, const Conv2dAttrs& conv,
               const QuantizedEpilogue& q);
Tensor qlinear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual,
               const QuantizedEpilogue& q);

ops::Attrs qconv2d_attrs(const Conv2dAttrs& conv, const QuantizedEpilogue& q);
ops::Attrs qlinear_attrs(const QuantizedEpilogue& q);
// Parses and checks (check_quantized_epilogue, channels unknown) a qconv2d / qlinear node.
QuantizedEpilogue quantized_epilogue_from(const ops::Attrs& a);

// The one validation of quantization parameters, called where they enter: graph and model
// loads (through the typed attribute parsers, tensor/ops/op_attrs.cc), quant::quantize_graph,
// and the ops. Each throws
// std::invalid_argument naming `what` and the value.
// A scale must be finite and positive once stored as float (1e300 is inf there, 1e-300 is 0).
void check_quant_scale(double scale, const std::string& what);
// A zero point must lie in dtype's range (u8: [0, 255], s8: [-128, 127]); dtype must be u8 or s8.
void check_zero_point(int64_t zero_point, DType dtype, const std::string& what);
// Every scale valid (out_scale too, though an f32 output ignores it), out_dtype u8, s8 or f32;
// with channels >= 0, one weight scale per channel.
void check_quantized_epilogue(const QuantizedEpilogue& q, int64_t channels, const std::string& what);


}  // namespace kiln
