#include "nn/layers/conv2d_transpose.h"

#include <stdexcept>

#include "nn/layers/activation.h"
#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class Conv2DTransposeImpl : public LayerImpl {
 public:
  Conv2DTransposeImpl(int64_t filters, std::array<int64_t, 2> kernel, const std::string& activation,
                      const Conv2DTransposeOptions& opt, const std::string& name)
      : LayerImpl("conv2d_transpose", name), filters_(filters), kernel_size_(kernel), activation_(activation), opt_(opt) {
    if (filters <= 0 || kernel[0] <= 0 || kernel[1] <= 0) {
      throw std::invalid_argument("Conv2DTranspose: filters and kernel_size must be positive");
    }
    check_activation_name(activation);
    attrs_.strides = opt.strides;
    attrs_.padding = padding_from_name(opt.padding);
    attrs_.dilation = opt.dilation_rate;
    if (opt.output_padding) attrs_.output_padding = *opt.output_padding;
    for (int i = 0; i < 2; ++i) {
      if (opt.strides[i] <= 0 || opt.dilation_rate[i] <= 0) {
        throw std::invalid_argument("Conv2DTranspose: strides and dilation_rate must be positive");
      }
      if (opt.output_padding && ((*opt.output_padding)[i] < 0 || (*opt.output_padding)[i] >= opt.strides[i])) {
        throw std::invalid_argument("Conv2DTranspose: output_padding " + shape_str({(*opt.output_padding)[0], (*opt.output_padding)[1]}) +
                                    " must be non-negative and strictly less than strides " +
                                    shape_str({opt.strides[0], opt.strides[1]}) + " (as Keras requires)");
      }
    }
  }

  void build(const std::vector<Shape>& shapes) override {
    if (shapes[0].size() != 4) {
      throw std::invalid_argument("layer '" + name() + "' (conv2d_transpose) expects NHWC input of rank 4, got shape " +
                                  shape_str(shapes[0]));
    }
    kernel_ = add_weight("kernel", {kernel_size_[0], kernel_size_[1], filters_, shapes[0][3]}, opt_.kernel_initializer);
    if (opt_.use_bias) bias_ = add_weight("bias", {filters_}, opt_.bias_initializer);
  }

  std::string class_name() const override { return "Conv2DTranspose"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("filters", filters_);
    c.set("kernel_size", Config::pair(kernel_size_));
    c.set("strides", Config::pair(opt_.strides));
    c.set("padding", opt_.padding);
    c.set("output_padding", opt_.output_padding ? Config::pair(*opt_.output_padding) : Config());
    c.set("data_format", "channels_last");
    c.set("dilation_rate", Config::pair(opt_.dilation_rate));
    c.set("activation", activation_config_name(activation_));
    c.set("use_bias", opt_.use_bias);
    c.set("kernel_initializer", opt_.kernel_initializer);
    c.set("bias_initializer", opt_.bias_initializer);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != 4) return std::nullopt;
    Shape kernel{kernel_size_[0], kernel_size_[1], filters_, in[0][3]};
    return conv_transpose2d_output_shape(in[0], kernel, attrs_, "Conv2DTranspose", shape_str(in[0]));
  }

  Tensor call(const std::vector<Tensor>& in, bool) override {
    const Tensor& x = in[0];
    expect_rank(x, 4, 4);
    // Under a bf16 policy the f32 master kernel and bias are cast for the op (their gradients
    // come back in f32 through the cast).
    Tensor k = compute_value(kernel_);
    if (k.dtype() != x.dtype()) k = cast(k, x.dtype());
    Tensor b;
    if (opt_.use_bias) {
      b = bias_.value();
      if (b.dtype() != x.dtype()) b = cast(b, x.dtype());
    }
    return apply_activation(activation_, conv_transpose2d(x, k, b, attrs_));
  }

 private:
  int64_t filters_;
  std::array<int64_t, 2> kernel_size_;
  std::string activation_;
  Conv2DTransposeOptions opt_;
  ConvTranspose2dAttrs attrs_;
  Variable kernel_, bias_;
};

Layer from_config(const Config& config) {
  ConfigReader r(config, "Conv2DTranspose config");
  BaseLayerConfig base = read_base_config(r);
  int64_t filters = r.integer("filters", 1, kMaxConfigSize);
  Conv2DTransposeOptions opt;
  Conv2DCommonConfig common = read_conv2d_common(r, opt);
  if (r.optional("output_padding")) opt.output_padding = r.pair("output_padding", {0, 0}, 0, kMaxConfigSize);
  opt.kernel_initializer = read_initializer(r, "kernel_initializer", opt.kernel_initializer);
  r.finish();
  return with_base_config(Conv2DTranspose(filters, common.kernel_size, common.activation, opt, base.name), base);
}

const bool registered = register_builtin_layer("Conv2DTranspose", from_config);

}  // namespace

Layer Conv2DTranspose(int64_t filters, std::array<int64_t, 2> kernel_size, const std::string& activation,
                      const Conv2DTransposeOptions& options, const std::string& name) {
  return Layer(std::make_shared<Conv2DTransposeImpl>(filters, kernel_size, activation, options, name));
}

Layer Conv2DTranspose(int64_t filters, int64_t kernel_size, const std::string& activation,
                      const Conv2DTransposeOptions& options, const std::string& name) {
  return Conv2DTranspose(filters, {kernel_size, kernel_size}, activation, options, name);
}

}  // namespace kiln::nn
