#include "nn/layers/depthwise_conv2d.h"

#include <stdexcept>

#include "nn/layers/conv_activation.h"
#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class DepthwiseConv2DImpl : public ActivatedConvLayer {
 public:
  DepthwiseConv2DImpl(std::array<int64_t, 2> kernel, const std::string& activation, const DepthwiseConv2DOptions& opt,
                      const std::string& name)
      : ActivatedConvLayer("depthwise_conv2d", name, activation), kernel_size_(kernel), opt_(opt) {
    if (kernel[0] <= 0 || kernel[1] <= 0 || opt.depth_multiplier <= 0) {
      throw std::invalid_argument("DepthwiseConv2D: kernel_size and depth_multiplier must be positive");
    }
    conv_.strides = opt.strides;
    conv_.padding = padding_from_name(opt.padding);
    conv_.dilation = opt.dilation_rate;
    conv_.activation = activation_.fused();
  }

  void build(const std::vector<Shape>& shapes) override {
    if (shapes[0].size() != 4) {
      throw std::invalid_argument("layer '" + name() + "' (DepthwiseConv2D) expects NHWC input of rank 4, got shape " +
                                  shape_str(shapes[0]));
    }
    const int64_t c = shapes[0][3];
    kernel_ = add_weight("kernel", {kernel_size_[0], kernel_size_[1], c, opt_.depth_multiplier},
                         opt_.depthwise_initializer);
    if (opt_.use_bias) bias_ = add_weight("bias", {c * opt_.depth_multiplier}, opt_.bias_initializer);
  }

  std::string class_name() const override { return "DepthwiseConv2D"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("kernel_size", Config::pair(kernel_size_));
    c.set("strides", Config::pair(opt_.strides));
    c.set("padding", opt_.padding);
    c.set("depth_multiplier", opt_.depth_multiplier);
    c.set("data_format", "channels_last");
    c.set("dilation_rate", Config::pair(opt_.dilation_rate));
    c.set("activation", activation_.config_name());
    c.set("use_bias", opt_.use_bias);
    c.set("depthwise_initializer", opt_.depthwise_initializer);
    c.set("bias_initializer", opt_.bias_initializer);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != 4) return std::nullopt;
    const Shape& s = in[0];
    SpatialPlan h = plan_spatial(s[1], kernel_size_[0], opt_.strides[0], opt_.dilation_rate[0], conv_.padding,
                                 "DepthwiseConv2D", shape_str(s));
    SpatialPlan w = plan_spatial(s[2], kernel_size_[1], opt_.strides[1], opt_.dilation_rate[1], conv_.padding,
                                 "DepthwiseConv2D", shape_str(s));
    return Shape{s[0], h.out, w.out, s[3] * opt_.depth_multiplier};
  }
  double compute_cost(const std::vector<Shape>& in) const override {
    std::optional<Shape> out = compute_output_shape(in);
    if (!out) return LayerImpl::compute_cost(in);
    double n = 1;
    for (int64_t d : *out) n *= static_cast<double>(d);
    return n * static_cast<double>(kernel_size_[0]) * static_cast<double>(kernel_size_[1]);
  }


 private:
  const Conv2dAttrs& output_conv() const override { return conv_; }
  Tensor convolve(const Tensor& x, const Conv2dAttrs& conv) override {
    expect_rank(x, 4, 4);
    return depthwise_conv2d(x, kernel_.value(), opt_.use_bias ? bias_.value() : Tensor(), conv);
  }

  std::array<int64_t, 2> kernel_size_;
  DepthwiseConv2DOptions opt_;
  Conv2dAttrs conv_;
  Variable kernel_, bias_;
};

Layer from_config(const Config& config) {
  ConfigReader r(config, "DepthwiseConv2D config");
  BaseLayerConfig base = read_base_config(r);
  DepthwiseConv2DOptions opt;
  Conv2DCommonConfig common = read_conv2d_common(r, opt);
  opt.depth_multiplier = r.integer("depth_multiplier", opt.depth_multiplier, 1, kMaxConfigSize);
  opt.depthwise_initializer = read_initializer(r, "depthwise_initializer", opt.depthwise_initializer);
  r.finish();
  return with_base_config(DepthwiseConv2D(common.kernel_size, common.activation, opt, base.name), base);
}

const bool registered = register_builtin_layer("DepthwiseConv2D", from_config);

}  // namespace

Layer DepthwiseConv2D(std::array<int64_t, 2> kernel_size, const std::string& activation,
                      const DepthwiseConv2DOptions& options, const std::string& name) {
  return Layer(std::make_shared<DepthwiseConv2DImpl>(kernel_size, activation, options, name));
}

Layer DepthwiseConv2D(int64_t kernel_size, const std::string& activation, const DepthwiseConv2DOptions& options,
                      const std::string& name) {
  return DepthwiseConv2D({kernel_size, kernel_size}, activation, options, name);
}

}  // namespace kiln::nn
