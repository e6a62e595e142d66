#include "nn/layers/activation.h"

#include <stdexcept>

#include "nn/layers/layer_config.h"
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
  if (name == "relu6") return relu6(x);
  if (name == "hard_sigmoid") return hard_sigmoid(x);
  if (name == "hard_silu" || name == "hard_swish") return hard_swish(x);
  if (name == "mish") return mish(x);
  throw std::invalid_argument("unknown activation '" + name +
                              "' (expected relu, gelu, sigmoid, tanh, softmax, log_softmax, elu, swish, softplus, "
                              "leaky_relu, relu6, hard_sigmoid, hard_silu, hard_swish, mish or linear)");
}

std::string activation_config_name(const std::string& name) {
  if (name.empty()) return "linear";
  if (name == "swish") return "silu";
  if (name == "hard_swish") return "hard_silu";
  return name;
}

void check_activation_name(const std::string& name) {
  static const char* known[] = {"",          "linear",     "relu",         "gelu",      "sigmoid",
                                "tanh",      "softmax",    "log_softmax",  "elu",       "swish",
                                "silu",      "softplus",   "leaky_relu",   "relu6",     "hard_sigmoid",
                                "hard_silu", "hard_swish", "mish"};
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
  std::string class_name() const override { return "Activation"; }
  bool supports_masking() const override { return true; }
  Config config() const override {
    return LayerImpl::config().set("activation", activation_.empty() ? "linear" : activation_);
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1) return std::nullopt;
    return in[0];
  }

 private:
  std::string activation_;
};

class SoftmaxImpl : public LayerImpl {
 public:
  SoftmaxImpl(int axis, const std::string& name) : LayerImpl("softmax", name), axis_(axis) {}
  Tensor call(const std::vector<Tensor>& in, bool) override { return softmax(in[0], axis_); }
  std::string class_name() const override { return "Softmax"; }
  Config config() const override { return LayerImpl::config().set("axis", axis_); }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1) return std::nullopt;
    return in[0];
  }

 private:
  int axis_;
};

Layer activation_from_config(const Config& config) {
  ConfigReader r(config, "Activation config");
  BaseLayerConfig base = read_base_config(r);
  std::string activation = read_activation(r, "activation", "");
  if (!r.has("activation")) r.fail("activation", "is required");
  r.finish();
  return with_base_config(Activation(activation, base.name), base);
}

Layer softmax_from_config(const Config& config) {
  ConfigReader r(config, "Softmax config");
  BaseLayerConfig base = read_base_config(r);
  int64_t axis = r.integer("axis", -1, -64, 63);
  r.finish();
  return with_base_config(Softmax(static_cast<int>(axis), base.name), base);
}

const bool registered = register_builtin_layer("Activation", activation_from_config) &&
                        register_builtin_layer("Softmax", softmax_from_config);

}  // namespace

Layer Activation(const std::string& activation, const std::string& name) {
  return Layer(std::make_shared<ActivationImpl>(activation, name));
}

Layer Softmax(int axis, const std::string& name) { return Layer(std::make_shared<SoftmaxImpl>(axis, name)); }

}  // namespace kiln::nn
