#include "nn/layers/relu.h"

#include <stdexcept>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

void check_relu_arguments(std::optional<float> max_value, float negative_slope, float threshold) {
  // Keras raises for negative values; NaN is refused as well (every comparison would be false).
  if (max_value && !(*max_value >= 0.f)) {
    throw std::invalid_argument("ReLU: max_value must be >= 0 (or none), got " + std::to_string(*max_value));
  }
  if (!(negative_slope >= 0.f)) {
    throw std::invalid_argument("ReLU: negative_slope must be >= 0, got " + std::to_string(negative_slope));
  }
  if (!(threshold >= 0.f)) throw std::invalid_argument("ReLU: threshold must be >= 0, got " + std::to_string(threshold));
}

class ReLUImpl : public LayerImpl {
 public:
  ReLUImpl(std::optional<float> max_value, float negative_slope, float threshold, const std::string& name)
      : LayerImpl("re_lu", name), max_value_(max_value), negative_slope_(negative_slope), threshold_(threshold) {
    check_relu_arguments(max_value, negative_slope, threshold);
  }
  Tensor call(const std::vector<Tensor>& in, bool) override {
    return keras_relu(in[0], max_value_, negative_slope_, threshold_);
  }
  // The plain form is a ReLU that nn/passes/fold_relu may fold into the layer before it.
  bool is_relu_activation() const override { return !max_value_ && negative_slope_ == 0.f && threshold_ == 0.f; }
  std::string class_name() const override { return "ReLU"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("max_value", max_value_ ? Config(static_cast<double>(*max_value_)) : Config());
    c.set("negative_slope", negative_slope_);
    c.set("threshold", threshold_);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1) return std::nullopt;
    return in[0];
  }

 private:
  std::optional<float> max_value_;
  float negative_slope_, threshold_;
};

Layer relu_from_config(const Config& config) {
  ConfigReader r(config, "ReLU config");
  BaseLayerConfig base = read_base_config(r);
  std::optional<float> max_value;
  if (r.optional("max_value")) max_value = r.real("max_value");
  float negative_slope = r.real("negative_slope", 0.f);
  float threshold = r.real("threshold", 0.f);
  if (max_value && !(*max_value >= 0.f)) r.fail("max_value", "must be >= 0 or null");
  if (!(negative_slope >= 0.f)) r.fail("negative_slope", "must be >= 0");
  if (!(threshold >= 0.f)) r.fail("threshold", "must be >= 0");
  r.finish();
  return with_base_config(ReLU(max_value, negative_slope, threshold, base.name), base);
}

const bool registered = register_builtin_layer("ReLU", relu_from_config);

}  // namespace

Tensor keras_relu(const Tensor& x, std::optional<float> max_value, float negative_slope, float threshold) {
  check_relu_arguments(max_value, negative_slope, threshold);
  if (threshold == 0.f) {
    if (negative_slope == 0.f) {
      if (!max_value) return relu(x);
      return *max_value == 6.f ? relu6(x) : clip(x, 0.f, *max_value);
    }
    if (!max_value) return leaky_relu(x, negative_slope);
  }
  // Keras's general form, step for step: x where x > threshold (else 0), clipped to
  // [0, max_value], minus negative_slope * relu(threshold - x).
  Tensor y = threshold != 0.f ? x * greater(x, Tensor::scalar(threshold, x.dtype())) : relu(x);
  if (max_value) y = clip(y, 0.f, *max_value);
  if (negative_slope != 0.f) y = y - relu(affine(x, -1.f, threshold)) * negative_slope;
  return y;
}

Layer ReLU(std::optional<float> max_value, float negative_slope, float threshold, const std::string& name) {
  return Layer(std::make_shared<ReLUImpl>(max_value, negative_slope, threshold, name));
}

}  // namespace kiln::nn
