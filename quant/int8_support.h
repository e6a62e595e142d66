#pragma once
#include "tensor/ops/op_kind.h"
#include "tensor/ops/support.h"

namespace kiln::quant {

// What quantize_graph() does with each op kind.
enum class Int8Role {
  conv,         // becomes a qconv2d (constant f32 weights on f32 data)
  dense,        // becomes a qlinear
  passthrough,  // runs on the int8 data as it is (max pooling, reshape)
  already_int8, // an int8 node of a quantized graph: kept
  float_only,   // stays float: its input is dequantized first
};

// One case per op kind (no default: a new kind does not compile until it has a role).
Int8Role int8_role(ops::OpKind kind);
// The role as a support-matrix entry: supported unless the op stays float.
ops::Support int8_support(ops::OpKind kind);

}  // namespace kiln::quant
