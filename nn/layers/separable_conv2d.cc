#include "nn/layers/separable_conv2d.h"

#include <stdexcept>

#include "nn/layers/conv_activation.h"
#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class SeparableConv2DImpl : public ActivatedConvLayer {
 public:
  SeparableConv2DImpl(int64_t filters, std::array<int64_t, 2> kernel, const std::string& activation,
                      const SeparableConv2DOptions& opt, const std::string& name)
      : ActivatedConvLayer("separable_conv2d", name, activation), filters_(filters), kernel_size_(kernel), opt_(opt) {
    if (filters <= 0 || kernel[0] <= 0 || kernel[1] <= 0 || opt.depth_multiplier <= 0) {
      throw std::invalid_argument("SeparableConv2D: filters, kernel_size and depth_multiplier must be positive");
    }
    depthwise_.strides = opt.strides;
    depthwise_.padding = padding_from_name(opt.padding);
    depthwise_.dilation = opt.dilation_rate;
    pointwise_.activation = activation_.fused();
  }

  void build(const std::vector<Shape>& shapes) override {
    if (shapes[0].size() != 4) {
      throw std::invalid_argument("layer '" + name() + "' (SeparableConv2D) expects NHWC input of rank 4, got shape " +
                                  shape_str(shapes[0]));
    }
    const int64_t c = shapes[0][3];
    depthwise_kernel_ = add_weight("depthwise_kernel", {kernel_size_[0], kernel_size_[1], c, opt_.depth_multiplier},
                                   opt_.depthwise_initializer);
    pointwise_kernel_ = add_weight("pointwise_kernel", {1, 1, c * opt_.depth_multiplier, filters_},
                                   opt_.pointwise_initializer);
    if (opt_.use_bias) bias_ = add_weight("bias", {filters_}, opt_.bias_initializer);
  }

  std::string class_name() const override { return "SeparableConv2D"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("filters", filters_);
    c.set("kernel_size", Config::pair(kernel_size_));
    c.set("strides", Config::pair(opt_.strides));
    c.set("padding", opt_.padding);
    c.set("data_format", "channels_last");
    c.set("dilation_rate", Config::pair(opt_.dilation_rate));
    c.set("depth_multiplier", opt_.depth_multiplier);
    c.set("activation", activation_.config_name());
    c.set("use_bias", opt_.use_bias);
    c.set("depthwise_initializer", opt_.depthwise_initializer);
    c.set("pointwise_initializer", opt_.pointwise_initializer);
    c.set("bias_initializer", opt_.bias_initializer);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != 4) return std::nullopt;
    const Shape& s = in[0];
    SpatialPlan h = plan_spatial(s[1], kernel_size_[0], opt_.strides[0], opt_.dilation_rate[0], depthwise_.padding,
                                 "SeparableConv2D", shape_str(s));
    SpatialPlan w = plan_spatial(s[2], kernel_size_[1], opt_.strides[1], opt_.dilation_rate[1], depthwise_.padding,
                                 "SeparableConv2D", shape_str(s));
    return Shape{s[0], h.out, w.out, filters_};
  }
  double compute_cost(const std::vector<Shape>& in) const override {
    std::optional<Shape> out = compute_output_shape(in);
    if (!out) return LayerImpl::compute_cost(in);
    const double pixels = static_cast<double>((*out)[0]) * static_cast<double>((*out)[1]) * static_cast<double>((*out)[2]);
    const double mid = static_cast<double>(in[0][3]) * static_cast<double>(opt_.depth_multiplier);
    return pixels * mid * (static_cast<double>(kernel_size_[0] * kernel_size_[1]) + static_cast<double>(filters_));
  }


 private:
  const Conv2dAttrs& output_conv() const override { return pointwise_; }
  Tensor convolve(const Tensor& x, const Conv2dAttrs& pointwise) override {
    expect_rank(x, 4, 4);
    Tensor h = depthwise_conv2d(x, depthwise_kernel_.value(), Tensor(), depthwise_);
    return conv2d(h, pointwise_kernel_.value(), opt_.use_bias ? bias_.value() : Tensor(), pointwise);
  }

  int64_t filters_;
  std::array<int64_t, 2> kernel_size_;
  SeparableConv2DOptions opt_;
  Conv2dAttrs depthwise_, pointwise_;
  Variable depthwise_kernel_, pointwise_kernel_, bias_;
};

Layer from_config(const Config& config) {
  ConfigReader r(config, "SeparableConv2D config");
  BaseLayerConfig base = read_base_config(r);
  int64_t filters = r.integer("filters", 1, kMaxConfigSize);
  SeparableConv2DOptions opt;
  Conv2DCommonConfig common = read_conv2d_common(r, opt);
  opt.depth_multiplier = r.integer("depth_multiplier", opt.depth_multiplier, 1, kMaxConfigSize);
  opt.depthwise_initializer = read_initializer(r, "depthwise_initializer", opt.depthwise_initializer);
  opt.pointwise_initializer = read_initializer(r, "pointwise_initializer", opt.pointwise_initializer);
  r.finish();
  return with_base_config(SeparableConv2D(filters, common.kernel_size, common.activation, opt, base.name), base);
}

const bool registered = register_builtin_layer("SeparableConv2D", from_config);

}  // namespace

Layer SeparableConv2D(int64_t filters, std::array<int64_t, 2> kernel_size, const std::string& activation,
                      const SeparableConv2DOptions& options, const std::string& name) {
  return Layer(std::make_shared<SeparableConv2DImpl>(filters, kernel_size, activation, options, name));
}

Layer SeparableConv2D(int64_t filters, int64_t kernel_size, const std::string& activation,
                      const SeparableConv2DOptions& options, const std::string& name) {
  return SeparableConv2D(filters, {kernel_size, kernel_size}, activation, options, name);
}

}  // namespace kiln::nn
