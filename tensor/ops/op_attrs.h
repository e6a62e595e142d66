#pragma once
// The typed attributes of every op kind (the attrs column of op_list.h). Code that reads an
// op's attributes parses them once with parse_attrs<T>(); the Attrs bag stays the serialized
// form (graph files, printing, ONNX attribute tables). Parsing checks every attribute's type
// and range and throws std::invalid_argument naming the op and the attribute.
#include <cstdint>
#include <vector>

#include "tensor/ops/attention.h"
#include "tensor/ops/attrs.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/conv_transpose.h"
#include "tensor/ops/eltwise.h"
#include "tensor/ops/fused.h"
#include "tensor/ops/pad.h"
#include "tensor/ops/pool.h"
#include "tensor/ops/quantized.h"
#include "tensor/ops/resize.h"
#include "tensor/tensor.h"

namespace kiln::ops {

struct NoAttrs {};
struct LinearAttrs {
  FusedActivation activation = FusedActivation::none;
};
struct FusedConv2dAttrs {
  Conv2dAttrs conv;  // its activation is none: the epilogue says what follows
  Epilogue activation = Epilogue::none;
};
struct FusedLinearAttrs {
  Epilogue activation = Epilogue::none;
};
struct QuantizeAttrs {
  float scale = 1.f;  // finite, positive
  int32_t zero_point = 0;  // in the range of dtype
  DType dtype = DType::u8;  // u8 or s8
};
struct DequantizeAttrs {
  float scale = 1.f;
  int32_t zero_point = 0;  // in [-128, 255]: s8's or u8's range
};
struct QConv2dAttrs {
  Conv2dAttrs conv;
  QuantizedEpilogue q;
};
struct QLinearAttrs {
  QuantizedEpilogue q;
};
struct BatchNormAttrs {
  double epsilon = 1e-3;  // double, as the bag holds it: folding computes in double
  bool relu = false;
};
struct LayerNormAttrs {
  double epsilon = 1e-3;  // finite, >= 0
};
// softmax, log_softmax, argmax, concat, gather: one axis, negative from the end.
struct AxisAttrs {
  int axis = -1;
};
struct ReduceAttrs {
  std::vector<int> axes;  // empty: every axis
  bool keepdims = false;
};
struct CastAttrs {
  DType dtype = DType::f32;
};
struct OneHotAttrs {
  int64_t depth = 0;
  DType dtype = DType::f32;
};
struct ReshapeAttrs {
  Shape shape;  // -1: inferred; 0: the input's dimension (ONNX's convention)
};
struct PermuteAttrs {
  std::vector<int> perm;
};
struct SliceAttrs {
  int axis = 0;
  int64_t start = 0, end = 0, step = 1;
};
struct BroadcastToAttrs {
  Shape shape;
};
struct EltwiseAttrs {
  float alpha = 0.f, beta = 0.f;
};
// scaled_dot_product_attention: the scale as applied (trace records the default 1/sqrt(D)
// resolved), the causal flag and how input 3 (the mask, when present) is read.
struct AttentionAttrs {
  double scale = 1.0;  // finite
  bool causal = false;
  AttentionMask mask_kind = AttentionMask::boolean;
};

// lstm, gru, simple_rnn (tensor/ops/rnn.h's RnnOptions).
struct RnnAttrs {
  bool initial_state = false;  // the initial states follow the bias among the inputs
  bool go_backwards = false;
  bool zero_output_for_mask = false;
};

// Parses `a` as T, checking types and ranges (see each struct).
template <typename T>
T parse_attrs(const Attrs& a);

// The typed attributes of each kind: AttrsOf<OpKind::conv2d> is Conv2dAttrs.
template <OpKind K>
struct AttrsOfKind;
#define KILN_OP_ATTRS_OF(name, attrs, ...) \
  template <>                              \
  struct AttrsOfKind<OpKind::name> {       \
    using type = attrs;                    \
  };
KILN_OPS(KILN_OP_ATTRS_OF)
#undef KILN_OP_ATTRS_OF
template <OpKind K>
using AttrsOf = typename AttrsOfKind<K>::type;

// Parses the attributes of a node known to be of kind K (checked: throws naming both ops).
template <OpKind K>
AttrsOf<K> parse_attrs_of(const Attrs& a) {
  if (!a.is(K)) throw std::invalid_argument(std::string("expected a ") + op_kind_name(K) + " node, got '" + a.op() + "'");
  return parse_attrs<AttrsOf<K>>(a);
}

// Parses the attributes of any registered kind, checking them; throws naming the op and the
// attribute. Graph::validate runs it on every node.
void check_attrs(const Attrs& a);

// The EltwiseKind of an eltwise op kind (relu, sigmoid, ...); nullopt for the others.
std::optional<EltwiseKind> eltwise_kind_of(OpKind kind);
// The epilogue a plain conv2d or linear applies (its FusedActivation as an Epilogue).
Epilogue epilogue_of(FusedActivation activation);

}  // namespace kiln::ops
