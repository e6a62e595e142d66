#include "quant/int8_support.h"

#include <stdexcept>
#include <string>

namespace kiln::quant {

Int8Role int8_role(ops::OpKind kind) {
  using K = ops::OpKind;
  switch (kind) {
    // Grouped and depthwise convolutions too (DepthwiseConv2D, SeparableConv2D run as conv2d
    // with groups): oneDNN's int8 convolution takes groups, and the per-channel weight scales
    // run along the outputs, each of which reads one group (tests/conv_layers_test).
    case K::conv2d:
    case K::fused_conv2d:
      return Int8Role::conv;
    case K::linear:
    case K::fused_linear:
      return Int8Role::dense;
    case K::max_pool2d:
    case K::reshape:
    // Padding copies values; a constant pad's value is quantized like the data it pads
    // (quantize_graph), so zero padding writes the zero point.
    case K::pad:
      return Int8Role::passthrough;
    case K::qconv2d:
    case K::qlinear:
    case K::quantize_linear:
    case K::dequantize_linear:
      return Int8Role::already_int8;
    // Average pooling stays float: its int8 output would need a scale of its own (and ONNX
    // has no int8 AveragePool).
    case K::avg_pool2d:
    KILN_BINARY_OPS(KILN_OP_CASE)
    KILN_REDUCE_OPS(KILN_OP_CASE)
    KILN_ELTWISE_OPS(KILN_OP_CASE)
    case K::matmul:
    case K::batch_norm:
    case K::batch_norm_inference:
    case K::softmax:
    case K::log_softmax:
    case K::sparse_softmax_cross_entropy:
    case K::argmax:
    case K::cast:
    case K::one_hot:
    case K::permute:
    case K::slice:
    case K::contiguous:
    case K::identity:
    case K::broadcast_to:
    case K::concat:
    // Both operands of attention's matmuls are activations (no weights to calibrate per
    // channel), and its softmax needs f32; a transformer's Dense projections carry the
    // quantizable FLOPs.
    case K::scaled_dot_product_attention:
    // LayerNorm stays f32 (issue 22: its statistics lose too much in int8); an embedding
    // table stays float, its rows gathered as they are.
    case K::layer_norm:
    case K::gather:
      return Int8Role::float_only;
    // Transposed convolution stays float: quantize_graph's int8 rewrite produces qconv2d, a
    // convolution; an int8 deconvolution needs its own quantized op kind, plan builder and
    // QDQ export (ONNX Runtime's int8 ConvTranspose), none of which exists yet.
    // Resize stays float: bilinear mixes neighbours and would need requantizing; nearest could
    // pass int8 through (it copies values), but the eager op, the plan and the QDQ exporter
    // take float resize only, so a nearest resize between int8 convolutions dequantizes.
    case K::conv_transpose2d:
    case K::resize2d:
      return Int8Role::float_only;
    // Masks and their select, and erf, run in f32 between int8 layers (the int8 values
    // dequantize before them): a 1/0 mask has nothing to quantize.
    case K::where:
    case K::logical_not:
    case K::logical_and:
    case K::logical_or:
    case K::erf:
      return Int8Role::float_only;
    // Recurrent layers stay f32: oneDNN 2.6's int8 RNN is LSTM-only forward with its own
    // scales per gate, which calibration here does not produce; Dense layers around them
    // still quantize.
    KILN_RNN_OPS(KILN_OP_CASE)
    return Int8Role::float_only;
  }
  throw std::logic_error(std::string("op kind ") + ops::op_kind_name(kind) + " has no decision in quantize_graph");
}

ops::Support int8_support(ops::OpKind kind) {
  switch (int8_role(kind)) {
    case Int8Role::conv: return ops::supported("qconv2d (s8 weights per channel; grouped and depthwise too)");
    case Int8Role::dense: return ops::supported("qlinear (s8 weights per channel)");
    case Int8Role::passthrough: return ops::supported("runs on int8 data");
    case Int8Role::already_int8: return ops::supported("kept (already int8)");
    case Int8Role::float_only: return ops::unsupported("stays float (dequantized input)");
  }
  return ops::unsupported("?");
}

}  // namespace kiln::quant
