#pragma once
// The one list of op kinds. OpKind (op_kind.h), the op table (op_table.cc), every backend's
// decision (Graph::run, the inference plan, ONNX export and import, quantization) and the
// support matrix (docs/support_matrix.md) are made from it. Adding an op: a row here, its
// family file, its cases in op_table.cc (how it runs) and op_infer.cc (its output types),
// its row in tests/op_table_test.cc, and then a decision in every backend, which the
// compiler asks for (each backend switches on OpKind with -Werror=switch).
//
// X(name, attrs, min_inputs, max_inputs, differentiable)
//   name:  the registered kind, as graphs, tapes and traces spell it;
//   attrs: its typed attribute struct (tensor/ops/op_attrs.h), parsed from the Attrs bag;
//   max_inputs -1: any number.
// Backward-only ops (conv2d_backward_data, eltwise_backward, ...) live on tapes, never in
// traced graphs, and are not listed.

// Element-wise binary ops with broadcasting; the comparisons give 1/0 and no gradient.
#define KILN_BINARY_OPS(X)               \
  X(add, NoAttrs, 2, 2, true)            \
  X(sub, NoAttrs, 2, 2, true)            \
  X(mul, NoAttrs, 2, 2, true)            \
  X(div, NoAttrs, 2, 2, true)            \
  X(maximum, NoAttrs, 2, 2, true)        \
  X(minimum, NoAttrs, 2, 2, true)        \
  X(add_relu, NoAttrs, 2, 2, true)       \
  X(equal, NoAttrs, 2, 2, false)         \
  X(greater, NoAttrs, 2, 2, false)       \
  X(greater_equal, NoAttrs, 2, 2, false) \
  X(less, NoAttrs, 2, 2, false)

#define KILN_REDUCE_OPS(X)                \
  X(reduce_sum, ReduceAttrs, 1, 1, true)  \
  X(reduce_mean, ReduceAttrs, 1, 1, true) \
  X(reduce_max, ReduceAttrs, 1, 1, true)

// One per EltwiseKind (tensor/ops/eltwise.h), with the same names.
#define KILN_ELTWISE_OPS(X)              \
  X(relu, EltwiseAttrs, 1, 1, true)      \
  X(gelu_tanh, EltwiseAttrs, 1, 1, true) \
  X(gelu_erf, EltwiseAttrs, 1, 1, true)  \
  X(sigmoid, EltwiseAttrs, 1, 1, true)   \
  X(tanh, EltwiseAttrs, 1, 1, true)      \
  X(exp, EltwiseAttrs, 1, 1, true)       \
  X(log, EltwiseAttrs, 1, 1, true)       \
  X(sqrt, EltwiseAttrs, 1, 1, true)      \
  X(square, EltwiseAttrs, 1, 1, true)    \
  X(abs, EltwiseAttrs, 1, 1, true)       \
  X(elu, EltwiseAttrs, 1, 1, true)       \
  X(softplus, EltwiseAttrs, 1, 1, true)  \
  X(swish, EltwiseAttrs, 1, 1, true)     \
  X(affine, EltwiseAttrs, 1, 1, true)    \
  X(clip, EltwiseAttrs, 1, 1, true)      \
  X(pow, EltwiseAttrs, 1, 1, true)          \
  X(relu6, EltwiseAttrs, 1, 1, true)        \
  X(hard_sigmoid, EltwiseAttrs, 1, 1, true) \
  X(hard_swish, EltwiseAttrs, 1, 1, true)   \
  X(mish, EltwiseAttrs, 1, 1, true)

// Recurrent layers over a whole sequence (tensor/ops/rnn.h): x, kernel, recurrent_kernel,
// bias, the initial states (LSTM: h and c), then an optional mask; outputs the sequence and
// the final states.
#define KILN_RNN_OPS(X)                  \
  X(lstm, RnnAttrs, 4, 7, true)          \
  X(gru, RnnAttrs, 4, 6, true)           \
  X(simple_rnn, RnnAttrs, 4, 6, true)

#define KILN_OPS(X)                                          \
  KILN_BINARY_OPS(X)                                         \
  X(matmul, NoAttrs, 2, 2, true)                             \
  X(linear, LinearAttrs, 2, 3, true)                         \
  X(conv2d, Conv2dAttrs, 2, 3, true)                         \
  X(fused_conv2d, FusedConv2dAttrs, 2, 4, false)             \
  X(fused_linear, FusedLinearAttrs, 2, 4, false)             \
  X(quantize_linear, QuantizeAttrs, 1, 1, false)             \
  X(dequantize_linear, DequantizeAttrs, 1, 1, false)         \
  X(qconv2d, QConv2dAttrs, 2, 4, false)                      \
  X(qlinear, QLinearAttrs, 2, 4, false)                      \
  X(max_pool2d, Pool2dAttrs, 1, 1, true)                     \
  X(avg_pool2d, Pool2dAttrs, 1, 1, true)                     \
  X(batch_norm, BatchNormAttrs, 3, 3, true)                  \
  X(batch_norm_inference, BatchNormAttrs, 5, 5, true)        \
  X(softmax, AxisAttrs, 1, 1, true)                          \
  X(log_softmax, AxisAttrs, 1, 1, true)                      \
  X(sparse_softmax_cross_entropy, NoAttrs, 2, 2, true)       \
  KILN_REDUCE_OPS(X)                                         \
  X(argmax, AxisAttrs, 1, 1, false)                          \
  X(cast, CastAttrs, 1, 1, true)                             \
  X(one_hot, OneHotAttrs, 1, 1, false)                       \
  X(reshape, ReshapeAttrs, 1, 1, true)                       \
  X(permute, PermuteAttrs, 1, 1, true)                       \
  X(slice, SliceAttrs, 1, 1, true)                           \
  X(contiguous, NoAttrs, 1, 1, true)                         \
  X(identity, NoAttrs, 1, 1, false)                          \
  X(broadcast_to, BroadcastToAttrs, 1, 1, true)              \
  X(concat, AxisAttrs, 1, -1, true)                          \
  X(scaled_dot_product_attention, AttentionAttrs, 3, 4, true) \
  X(gather, AxisAttrs, 2, 2, true)                           \
  X(layer_norm, LayerNormAttrs, 3, 3, true)                  \
  X(conv_transpose2d, ConvTranspose2dAttrs, 2, 3, true)      \
  X(resize2d, Resize2dAttrs, 1, 1, true)                     \
  X(pad, PadAttrs, 1, 1, true)                               \
  X(where, NoAttrs, 3, 3, true)                              \
  X(logical_not, NoAttrs, 1, 1, false)                       \
  X(logical_and, NoAttrs, 2, 2, false)                       \
  X(logical_or, NoAttrs, 2, 2, false)                        \
  X(erf, NoAttrs, 1, 1, true)                                \
  KILN_RNN_OPS(X)                                            \
  KILN_ELTWISE_OPS(X)

// `case OpKind::name:` for each op of a sub-list: KILN_ELTWISE_OPS(KILN_OP_CASE).
#define KILN_OP_CASE(name, ...) case ::kiln::ops::OpKind::name:
