#pragma once
// A convolution layer's Keras activation: "relu" fuses into the oneDNN convolution, any other
// runs after it. Shared by the conv layers (Conv2D, Conv1D, DepthwiseConv2D, SeparableConv2D).
#include <string>
#include <vector>

#include "nn/layer.h"
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
  std::string config_name() const { return activation_config_name(name_); }

 private:
  std::string name_;
};

// The base of the conv layers: call() runs the layer's convolutions with its activation (a ReLU
// fused into the last one), call_with_relu() fuses a ReLU that follows the layer into it too.
class ActivatedConvLayer : public LayerImpl {
 public:
  ActivatedConvLayer(const std::string& kind, const std::string& name, const std::string& activation)
      : LayerImpl(kind, name), activation_(activation) {}

  Tensor call(const std::vector<Tensor>& in, bool) override { return activation_.finish(convolve(in[0], output_conv())); }
  bool fuses_relu() const override { return activation_.fuses_relu(); }
  Tensor call_with_relu(const std::vector<Tensor>& in, bool training) override {
    if (!fuses_relu()) return LayerImpl::call_with_relu(in, training);
    Conv2dAttrs with_relu = output_conv();
    with_relu.activation = FusedActivation::relu;
    return convolve(in[0], with_relu);
  }

 protected:
  // The attributes of the layer's last convolution, the one its activation fuses into.
  virtual const Conv2dAttrs& output_conv() const = 0;
  // The layer's convolutions on x, the last one with `last` as its attributes.
  virtual Tensor convolve(const Tensor& x, const Conv2dAttrs& last) = 0;

  ConvActivation activation_;
};

}  // namespace kiln::nn
