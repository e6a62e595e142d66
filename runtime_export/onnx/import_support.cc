// Which op kinds import_onnx produces, and from which ONNX ops. Importer::add_node refuses a
// kind marked unsupported here, so the matrix cannot claim less than the importer does.
#include "runtime_export/onnx/onnx_import.h"

#include <stdexcept>
#include <string>

namespace kiln::runtime_export {

ops::Support onnx_import_support(ops::OpKind kind) {
  using K = ops::OpKind;
  using ops::supported;
  using ops::unsupported;
  switch (kind) {
    case K::add: return supported("Add");
    case K::sub: return supported("Sub");
    case K::mul: return supported("Mul");
    case K::div: return supported("Div");
    case K::maximum: return supported("Max");
    case K::minimum: return supported("Min");
    case K::equal: return supported("Equal (INT64/BOOL operands compared in f32), Xor");
    case K::greater: return supported("Greater");
    case K::greater_equal: return supported("GreaterOrEqual");
    case K::less: return supported("Less, LessOrEqual (Less or Equal)");
    case K::matmul: return supported("MatMul");
    case K::linear: return supported("Gemm");
    case K::conv2d: return supported("Conv (any pads, group)");
    case K::max_pool2d: return supported("MaxPool (any pads below the kernel, ceil_mode)");
    case K::avg_pool2d: return supported("AveragePool (any pads below the kernel, ceil_mode, count_include_pad)");
    case K::batch_norm_inference: return supported("BatchNormalization");
    case K::softmax: return supported("Softmax (2-D coercion before opset 13)");
    case K::log_softmax: return supported("LogSoftmax (2-D coercion before opset 13)");
    case K::reduce_sum: return supported("ReduceSum");
    case K::reduce_mean: return supported("ReduceMean (axes attribute, or input from opset 18)");
    case K::reduce_max: return supported("ReduceMax");
    case K::argmax: return supported("ArgMax + Cast");
    case K::cast: return supported("Cast (Round, Clip)");
    case K::reshape: return supported("Reshape");
    case K::permute: return supported("Transpose (where a layout needs it)");
    case K::slice: return supported("Slice");
    case K::broadcast_to: return supported("Expand");
    case K::concat: return supported("Concat");
    case K::gather: return supported("Gather (INT64 constant indices become s32)");
    case K::layer_norm: return supported("LayerNormalization (last axis, with B)");
    case K::conv_transpose2d: return supported("ConvTranspose (explicit pads, output_padding; no auto_pad or group)");
    case K::lstm: return supported("LSTM (forward or reverse, layout 0, constant W, R, B; no sequence_lens, no peepholes)");
    case K::gru: return supported("GRU (linear_before_reset=1, forward or reverse, layout 0, constant W, R, B; no sequence_lens)");
    case K::simple_rnn: return supported("RNN (Tanh, forward or reverse, layout 0, constant W, R, B; no sequence_lens)");
    case K::resize2d: return supported("Resize (nearest/linear, 4-D, half_pixel or asymmetric nearest)");
    case K::pad: return supported("Pad (constant/reflect/edge, opsets 2-21 forms incl. axes; not the batch axis)");
    case K::where: return supported("Where on run-time values (masked_fill, torch.where)");
    case K::logical_not: return supported("Not, Xor, Cast to BOOL (as Not(Not(x)))");
    case K::logical_and: return supported("And");
    case K::logical_or: return supported("Or, LessOrEqual");
    case K::erf: return supported("Erf (outside the GELU pattern)");
    case K::relu: return supported("Relu, LeakyRelu");
    case K::gelu_tanh: return supported("GELU's tanh form, Gelu approximate=tanh (opset 20)");
    case K::gelu_erf: return supported("GELU's erf form, Gelu (opset 20)");
    case K::sigmoid: return supported("Sigmoid");
    case K::tanh: return supported("Tanh");
    case K::exp: return supported("Exp");
    case K::log: return supported("Log");
    case K::sqrt: return supported("Sqrt");
    case K::abs: return supported("Abs");
    case K::elu: return supported("Elu");
    case K::softplus: return supported("Softplus");
    case K::clip: return supported("Clip");
    case K::pow: return supported("Pow (scalar exponent), Reciprocal");
    case K::relu6: return supported("Clip(0, 6)");
    case K::hard_sigmoid: return supported("HardSigmoid (alpha 1/6, beta 0.5; others as affine + clip)");
    case K::hard_swish: return supported("HardSwish");
    case K::mish: return supported("Mish (opset 18), Softplus + Tanh + Mul");
    case K::add_relu: return unsupported("imported as Add then Relu");
    case K::scaled_dot_product_attention: return unsupported("its exported pattern imports as its pieces (matmul, mul, add, softmax)");
    case K::square: return unsupported("imported as Mul(x, x)");
    case K::swish: return supported("Sigmoid + Mul(x, .) (SiLU)");
    case K::affine: return supported("HardSigmoid of other alpha/beta (affine + clip)");
    case K::fused_conv2d:
    case K::fused_linear:
      return unsupported("made by the inference passes, not imported");
    case K::quantize_linear: return supported("QuantizeLinear (per tensor)");
    case K::dequantize_linear: return supported("DequantizeLinear (per tensor; per axis on initializers)");
    case K::qconv2d: return supported("DequantizeLinear -> Conv (s8 weights, weight zero points 0) [-> QuantizeLinear]");
    case K::qlinear: return supported("DequantizeLinear -> Gemm / MatMul (s8 weights, weight zero points 0) [-> QuantizeLinear]");
    case K::batch_norm: return unsupported("a training op");
    case K::sparse_softmax_cross_entropy: return unsupported("a loss: training only");
    case K::one_hot: return unsupported("no ONNX mapping in Kiln's importer");
    case K::contiguous:
    case K::identity:
      return unsupported("Identity imports as no node");
  }
  throw std::logic_error(std::string("op kind ") + ops::op_kind_name(kind) + " has no decision in the ONNX importer");
}

}  // namespace kiln::runtime_export
