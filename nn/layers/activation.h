#pragma once
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

// Applies a Keras activation by name: "" or "linear", relu, gelu, sigmoid, tanh, softmax,
// log_softmax, elu, swish/silu, softplus, leaky_relu, relu6, hard_sigmoid (Keras 3's:
// relu6(x + 3) / 6), hard_silu/hard_swish, mish. Throws for unknown names.
Tensor apply_activation(const std::string& name, const Tensor& x);
void check_activation_name(const std::string& name);
// The name Keras writes in a layer's config for its `activation` argument: Keras stores the
// function, so aliases serialize by the function's own name ("swish" as "silu", "hard_swish" as
// "hard_silu", "" as "linear"). The Activation layer itself keeps the string it was given.
std::string activation_config_name(const std::string& name);

Layer Activation(const std::string& activation, const std::string& name = "");
Layer Softmax(int axis = -1, const std::string& name = "");

}  // namespace kiln::nn
