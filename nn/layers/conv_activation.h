#pragma once
// A convolution layer's Keras activation: "relu" fuses into the oneDNN convolution, any other
// runs after it. Shared by the conv layers (Conv1D, DepthwiseConv2D, SeparableConv2D).
#include <string>

#include "nn/layers/activation.h"
#include "tensor/ops/conv.h"

namespace kiln::nn {

class ConvActivation {
 public:
  explicit ConvActivation(std::string name) : name_(std::move(name)) { check_activation_name(name_); }
  // What the convolution itself applies.
  FusedActivation fused() const { return name_ == "relu" ? FusedActivation::relu : FusedActivation::none; }
  // The convolution's output with the rest of the activation applied.
  Tensor finish(const Tensor& y) const { return name_ == "relu" ? y : apply_activation(name_, y); }
  // Whether a ReLU after the layer can fuse into its convolution (LayerImpl::fuses_relu).
  bool fuses_relu() const { return name_.empty() || name_ == "linear" || name_ == "relu"; }
  std::string config_name() const { return name_.empty() ? "linear" : name_; }

 private:
  std::string name_;
};

}  // namespace kiln::nn
