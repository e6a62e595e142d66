#include "nn/layers/layer_normalization.h"

#include <cmath>
#include <stdexcept>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class LayerNormalizationImpl : public LayerImpl {
 public:
  LayerNormalizationImpl(const LayerNormalizationOptions& opt, const std::string& name)
      : LayerImpl("layer_normalization", name), opt_(opt) {
    if (!(opt.epsilon >= 0) || !std::isfinite(opt.epsilon)) {
      throw std::invalid_argument("LayerNormalization: epsilon must be finite and >= 0, got " +
                                  std::to_string(opt.epsilon));
    }
  }

  void build(const std::vector<Shape>& shapes) override {
    if (shapes[0].empty()) throw std::invalid_argument("layer '" + name() + "' (LayerNormalization) got a scalar input");
    const int64_t c = shapes[0].back();
    if (opt_.scale) gamma_ = add_weight("gamma", {c}, opt_.gamma_initializer);
    if (opt_.center) beta_ = add_weight("beta", {c}, opt_.beta_initializer);
  }

  Tensor call(const std::vector<Tensor>& in, bool) override {
    const Tensor& x = in[0];
    expect_rank(x, 1);
    const int64_t c = x.shape().back();
    if (opt_.scale && gamma_.shape()[0] != c) {
      throw std::invalid_argument("layer '" + name() + "' (LayerNormalization) was built for last dimension " +
                                  std::to_string(gamma_.shape()[0]) + " but got input " + x.describe());
    }
    // The op takes both parameters; an absent one is the constant it stands for.
    Tensor gamma = opt_.scale ? f32_value(gamma_) : Tensor::ones({c});
    Tensor beta = opt_.center ? f32_value(beta_) : Tensor::zeros({c});
    return layer_norm(x, gamma, beta, opt_.epsilon);
  }

  bool supports_masking() const override { return true; }
  std::string class_name() const override { return "LayerNormalization"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("axis", -1);
    c.set("epsilon", opt_.epsilon);
    c.set("center", opt_.center);
    c.set("scale", opt_.scale);
    c.set("rms_scaling", false);
    c.set("beta_initializer", opt_.beta_initializer);
    c.set("gamma_initializer", opt_.gamma_initializer);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1) return std::nullopt;
    return in[0];
  }

 private:
  // Parameters go to oneDNN in f32 (a bf16-variable policy casts them).
  static Tensor f32_value(const Variable& v) { return cast(v.value(), DType::f32); }

  LayerNormalizationOptions opt_;
  Variable gamma_, beta_;
};

Layer from_config(const Config& config) {
  ConfigReader r(config, "LayerNormalization config");
  BaseLayerConfig base = read_base_config(r);
  if (const Config* axis = r.optional("axis")) {
    // Keras writes an int or a list; only the last axis is supported.
    auto minus_one = [](const Config& j) {
      return (j.kind() == Config::Kind::integer || j.kind() == Config::Kind::number) && j.as_number() == -1;
    };
    const bool last = minus_one(*axis) || (axis->is_list() && axis->size() == 1 && minus_one((*axis)[0]));
    if (!last) r.fail("axis", "only axis=-1 is supported");
  }
  LayerNormalizationOptions opt;
  opt.epsilon = r.real("epsilon", opt.epsilon);
  opt.center = r.boolean("center", opt.center);
  opt.scale = r.boolean("scale", opt.scale);
  if (r.boolean("rms_scaling", false)) r.fail("rms_scaling", "is not supported (deprecated in Keras)");
  opt.beta_initializer = read_initializer(r, "beta_initializer", opt.beta_initializer);
  opt.gamma_initializer = read_initializer(r, "gamma_initializer", opt.gamma_initializer);
  r.finish();
  return with_base_config(LayerNormalization(opt, base.name), base);
}

const bool registered = register_builtin_layer("LayerNormalization", from_config);

}  // namespace

Layer LayerNormalization(const LayerNormalizationOptions& options, const std::string& name) {
  return Layer(std::make_shared<LayerNormalizationImpl>(options, name));
}

}  // namespace kiln::nn
