#include "nn/layers/dense.h"

#include <stdexcept>

#include "nn/layers/activation.h"
#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class DenseImpl : public LayerImpl {
 public:
  DenseImpl(int64_t units, const std::string& activation, const DenseOptions& opt, const std::string& name)
      : LayerImpl("dense", name), units_(units), activation_(activation), opt_(opt) {
    if (units <= 0) throw std::invalid_argument("Dense: units must be positive, got " + std::to_string(units));
    check_activation_name(activation);
  }

  void build(const std::vector<Shape>& shapes) override {
    if (shapes[0].empty()) throw std::invalid_argument("layer '" + name() + "' (dense) got a scalar input");
    int64_t in = shapes[0].back();
    kernel_ = add_weight("kernel", {in, units_}, opt_.kernel_initializer);
    if (opt_.use_bias) bias_ = add_weight("bias", {units_}, opt_.bias_initializer);
  }

  std::string class_name() const override { return "Dense"; }
  // Keras: a Dense layer passes its input's mask on.
  bool supports_masking() const override { return true; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("units", units_);
    c.set("activation", activation_config_name(activation_));
    c.set("use_bias", opt_.use_bias);
    c.set("kernel_initializer", opt_.kernel_initializer);
    c.set("bias_initializer", opt_.bias_initializer);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].empty()) return std::nullopt;
    Shape out = in[0];
    out.back() = units_;
    return out;
  }

  double compute_cost(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].empty()) return LayerImpl::compute_cost(in);
    double positions = 1;
    for (size_t i = 0; i + 1 < in[0].size(); ++i) positions *= static_cast<double>(in[0][i]);
    return positions * static_cast<double>(in[0].back()) * static_cast<double>(units_);
  }

  Tensor call(const std::vector<Tensor>& in, bool) override {
    const Tensor& x = in[0];
    expect_rank(x, 1);
    if (x.shape().back() != kernel_.shape()[0]) {
      throw std::invalid_argument("layer '" + name() + "' (dense) was built for last dimension " +
                                  std::to_string(kernel_.shape()[0]) + " but got input " + x.describe());
    }
    Tensor b = opt_.use_bias ? bias_.value() : Tensor();
    // The f32 bias goes to oneDNN as is, also under bf16 compute (one op fewer each way).
    bool fuse = activation_ == "relu";
    Tensor y = linear(x, compute_value(kernel_), b, fuse ? FusedActivation::relu : FusedActivation::none);
    return fuse ? y : apply_activation(activation_, y);
  }

 private:
  int64_t units_;
  std::string activation_;
  DenseOptions opt_;
  Variable kernel_, bias_;
};

Layer from_config(const Config& config) {
  ConfigReader r(config, "Dense config");
  BaseLayerConfig base = read_base_config(r);
  int64_t units = r.integer("units", 1, kMaxConfigSize);
  std::string activation = read_activation(r, "activation", "linear");
  DenseOptions opt;
  opt.use_bias = r.boolean("use_bias", opt.use_bias);
  opt.kernel_initializer = read_initializer(r, "kernel_initializer", opt.kernel_initializer);
  opt.bias_initializer = read_initializer(r, "bias_initializer", opt.bias_initializer);
  r.finish();
  return with_base_config(Dense(units, activation, opt, base.name), base);
}

const bool registered = register_builtin_layer("Dense", from_config);

}  // namespace

Layer Dense(int64_t units, const std::string& activation, const DenseOptions& options, const std::string& name) {
  return Layer(std::make_shared<DenseImpl>(units, activation, options, name));
}

}  // namespace kiln::nn
