#include "nn/layers/batch_norm.h"

#include <cmath>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class BatchNormImpl : public LayerImpl {
 public:
  BatchNormImpl(const BatchNormalizationOptions& opt, const std::string& name)
      : LayerImpl("batch_normalization", name), opt_(opt) {
    if (opt.momentum < 0 || opt.momentum > 1) throw std::invalid_argument("BatchNormalization: momentum must be in [0, 1]");
  }

  void build(const std::vector<Shape>& shapes) override {
    if (shapes[0].size() < 2) {
      throw std::invalid_argument("layer '" + name() + "' (batch_normalization) needs rank >= 2, got shape " +
                                  shape_str(shapes[0]));
    }
    int64_t c = shapes[0].back();
    gamma_ = add_weight("gamma", {c}, "ones", /*trainable=*/opt_.scale);
    beta_ = add_weight("beta", {c}, "zeros", /*trainable=*/opt_.center);
    moving_mean_ = add_weight("moving_mean", {c}, "zeros", false);
    moving_variance_ = add_weight("moving_variance", {c}, "ones", false);
  }

  Tensor call(const std::vector<Tensor>& in, bool training) override { return normalize(in[0], training, false); }
  Tensor call_with_relu(const std::vector<Tensor>& in, bool training) override { return normalize(in[0], training, true); }
  bool fuses_relu() const override { return true; }

  std::string class_name() const override { return "BatchNormalization"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("axis", -1);
    c.set("momentum", opt_.momentum);
    c.set("epsilon", opt_.epsilon);
    c.set("center", opt_.center);
    c.set("scale", opt_.scale);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() < 2) return std::nullopt;
    return in[0];
  }

 private:
  Tensor normalize(const Tensor& x, bool training, bool relu) {
    expect_rank(x, 2);
    if (!training) {
      return batch_norm_inference(x, gamma_.value(), beta_.value(), moving_mean_.value(), moving_variance_.value(),
                                  opt_.epsilon, relu);
    }
    BatchNormOutput out = batch_norm_training(x, gamma_.value(), beta_.value(), opt_.epsilon, relu);
    update_moving(moving_mean_, out.batch_mean);
    update_moving(moving_variance_, out.batch_variance);
    return out.y;
  }

  void update_moving(const Variable& moving, const Tensor& batch) {
    float* m = moving.value().data<float>();
    const float* b = batch.data<float>();
    const float mom = opt_.momentum;
    for (int64_t i = 0; i < batch.numel(); ++i) m[i] = m[i] * mom + b[i] * (1 - mom);
    moving.value().bump_version();
  }

  BatchNormalizationOptions opt_;
  Variable gamma_, beta_, moving_mean_, moving_variance_;
};

Layer from_config(const Config& config) {
  ConfigReader r(config, "BatchNormalization config");
  BaseLayerConfig base = read_base_config(r);
  if (r.integer("axis", -1, -1, -1) != -1) r.fail("axis", "must be -1");
  BatchNormalizationOptions opt;
  opt.momentum = r.real("momentum", opt.momentum);
  if (!(opt.momentum >= 0 && opt.momentum <= 1)) r.fail("momentum", "must be in [0, 1]");
  opt.epsilon = r.real("epsilon", opt.epsilon);
  if (!(opt.epsilon > 0) || !std::isfinite(opt.epsilon)) r.fail("epsilon", "must be positive and finite");
  opt.center = r.boolean("center", opt.center);
  opt.scale = r.boolean("scale", opt.scale);
  r.finish();
  return with_base_config(BatchNormalization(opt, base.name), base);
}

const bool registered = register_builtin_layer("BatchNormalization", from_config);

}  // namespace

Layer BatchNormalization(const BatchNormalizationOptions& options, const std::string& name) {
  return Layer(std::make_shared<BatchNormImpl>(options, name));
}

}  // namespace kiln::nn
