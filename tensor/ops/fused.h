#pragma once
#include <string>
#include <vector>

#include "tensor/ops/attrs.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/eltwise.h"
#include "tensor/tensor.h"

namespace kiln {

// The epilogue activations runtime_export's fusion pass folds into a conv or dense.
enum class Epilogue { none, relu, gelu_erf, gelu_tanh, relu6, hard_sigmoid, hard_swish, mish };
const char* epilogue_name(Epilogue e);                 // "none", "relu", ...: the eltwise op's name
Epilogue epilogue_from_name(const std::string& name);  // throws naming the value
std::vector<Epilogue> all_epilogues();
// The eltwise op an epilogue applies (relu for none: callers check none first).
EltwiseKind epilogue_eltwise(Epilogue e);

// One conv or dense with its epilogue, as the inference runtime runs it (one oneDNN primitive
// with post-ops):
//   fused_conv2d: y = act(conv2d(x, w, bias) + residual)
//   fused_linear: y = act(linear(x, w, bias) + residual)
// residual may be undefined (no add); it has y's shape. These eager versions compose the
// eager ops and are the reference semantics of the fused nodes (Graph::run runs them). They
// are inference-only: recorded as one node, with no gradient.
// Attributes: fused_conv2d has conv2d's (strides, padding, dilation, groups) with
// "activation" naming an Epilogue; fused_linear has "activation" only. A residual is the
// node's fourth input.
Tensor fused_conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual,
                    const Conv2dAttrs& conv, Epilogue activation);
Tensor fused_linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual,
                    Epilogue activation);

ops::Attrs fused_conv2d_attrs(const Conv2dAttrs& conv, Epilogue activation);

namespace detail {
// The defined tensors among a composite op's optional inputs, in order (what it records).
std::vector<Tensor> present(std::initializer_list<Tensor> inputs);
}  // namespace detail
ops::Attrs fused_linear_attrs(Epilogue activation);

}  // namespace kiln
