#include "nn/layers/activation.h"

#include <stdexcept>

#include "tensor/ops/ops.h"

namespace kiln::nn {

Tensor apply_activation(const std::string& name, const Tensor& x) {
  if (name.empty() || name == "linear") return x;
  if (name == "relu") return relu(x);
  if (name == "gelu") return gelu(x);
  if (name == "sigmoid") return sigmoid(x);
  if (name == "tanh") return tanh(x);
  if (name == "softmax") return softmax(x, -1);
  if (name == "log_softmax") return log_softmax(x, -1);
  if (name == "elu") return elu(x);
  if (name == "swish" || name == "silu") return swish(x);
  if (name == "softplus") return softplus(x);
  if (name == "leaky_relu") return leaky_relu(x, 0.2f);
  throw std::invalid_argument("unknown activation '" + name +
                              "' (expected relu, gelu, sigmoid, tanh, softmax, log_softmax, elu, swish, softplus, "
                              "leaky_relu or linear)");
}

void check_activation_name(const std::string& name) {
  static const char* known[] = {"", "linear", "relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax",
                                "elu", "swish", "silu", "softplus", "leaky_relu"};
  for (const char* k : known) {
    if (name == k) return;
  }
  apply_activation(name, Tensor());  // throws the descriptive error
}

namespace {

class ActivationImpl : public LayerImpl {
 public:
  ActivationImpl(const std::string& activation, const std::string& name)
      : LayerImpl("activation", name), activation_(activation) {
    check_activation_name(activation);
  }
  Tensor call(const std::vector<Tensor>& in, bool) override { return apply_activation(activation_, in[0]); }
  bool is_relu_activation() const override { return activation_ == "relu"; }

 private:
  std::string activation_;
};

class SoftmaxImpl : public LayerImpl {
 public:
  SoftmaxImpl(int axis, const std::string& name) : LayerImpl("softmax", name), axis_(axis) {}
  Tensor call(const std::vector<Tensor>& in, bool) override { return softmax(in[0], axis_); }

 private:
  int axis_;
};

}  // namespace

Layer Activation(const std::string& activation, const std::string& name) {
  return Layer(std::make_shared<ActivationImpl>(activation, name));
}

Layer Softmax(int axis, const std::string& name) { return Layer(std::make_shared<SoftmaxImpl>(axis, name)); }

}  // namespace kiln::nn
