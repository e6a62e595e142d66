#include "nn/layers/conv2d.h"

#include <stdexcept>

#include "nn/layers/conv_activation.h"
#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class Conv2DImpl : public ActivatedConvLayer {
 public:
  Conv2DImpl(int64_t filters, std::array<int64_t, 2> kernel, const std::string& activation, const Conv2DOptions& opt,
             const std::string& name)
      : ActivatedConvLayer("conv2d", name, activation), filters_(filters), kernel_size_(kernel), opt_(opt) {
    if (filters <= 0 || kernel[0] <= 0 || kernel[1] <= 0) {
      throw std::invalid_argument("Conv2D: filters and kernel_size must be positive");
    }
    conv_.strides = opt.strides;
    conv_.padding = padding_from_name(opt.padding);
    conv_.dilation = opt.dilation_rate;
    conv_.groups = opt.groups;
    conv_.activation = activation_.fused();
  }

  void build(const std::vector<Shape>& shapes) override {
    if (shapes[0].size() != 4) {
      throw std::invalid_argument("layer '" + name() + "' (conv2d) expects NHWC input of rank 4, got shape " +
                                  shape_str(shapes[0]));
    }
    int64_t c = shapes[0][3];
    if (c % opt_.groups != 0 || filters_ % opt_.groups != 0) {
      throw std::invalid_argument("layer '" + name() + "': groups=" + std::to_string(opt_.groups) +
                                  " must divide input channels " + std::to_string(c) + " and filters " +
                                  std::to_string(filters_));
    }
    kernel_ = add_weight("kernel", {kernel_size_[0], kernel_size_[1], c / opt_.groups, filters_}, opt_.kernel_initializer);
    if (opt_.use_bias) bias_ = add_weight("bias", {filters_}, opt_.bias_initializer);
    input_shape_ = shapes[0];
    if (packed_) relayout_kernel();
  }

  int set_packed_weights(bool packed) override {
    packed_ = packed;
    if (built()) relayout_kernel();
    return kernel_.defined() && kernel_.value().is_packed() ? 1 : 0;
  }

  std::string class_name() const override { return "Conv2D"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("filters", filters_);
    c.set("kernel_size", Config::pair(kernel_size_));
    c.set("strides", Config::pair(opt_.strides));
    c.set("padding", opt_.padding);
    c.set("data_format", "channels_last");
    c.set("dilation_rate", Config::pair(opt_.dilation_rate));
    c.set("groups", opt_.groups);
    c.set("activation", activation_.config_name());
    c.set("use_bias", opt_.use_bias);
    c.set("kernel_initializer", opt_.kernel_initializer);
    c.set("bias_initializer", opt_.bias_initializer);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != 4 || in[0][3] % opt_.groups != 0) return std::nullopt;
    const Shape& s = in[0];
    SpatialPlan h = plan_spatial(s[1], kernel_size_[0], opt_.strides[0], opt_.dilation_rate[0], conv_.padding,
                                 "Conv2D", shape_str(s));
    SpatialPlan w = plan_spatial(s[2], kernel_size_[1], opt_.strides[1], opt_.dilation_rate[1], conv_.padding,
                                 "Conv2D", shape_str(s));
    return Shape{s[0], h.out, w.out, filters_};
  }

  double compute_cost(const std::vector<Shape>& in) const override {
    std::optional<Shape> out = compute_output_shape(in);
    if (!out) return LayerImpl::compute_cost(in);
    double n = 1;
    for (int64_t d : *out) n *= static_cast<double>(d);
    return n * static_cast<double>(kernel_size_[0]) * static_cast<double>(kernel_size_[1]) *
           static_cast<double>(in[0][3] / opt_.groups);
  }


 private:
  const Conv2dAttrs& output_conv() const override { return conv_; }
  Tensor convolve(const Tensor& x, const Conv2dAttrs& conv) override {
    expect_rank(x, 4, 4);
    Tensor b = opt_.use_bias ? bias_.value() : Tensor();
    // The f32 bias goes to oneDNN as is, also under bf16 compute (one op fewer each way).
    // conv2d takes the f32 master kernel directly under bf16 compute (one fused convert+reorder).
    return conv2d(x, kernel_.value(), b, conv);
  }

  // In place, so the variable keeps its identity for the tape, optimizer slots and callers.
  void relayout_kernel() {
    const Tensor& k = kernel_.value();
    if (packed_) {
      Tensor packed = pack_conv2d_kernel(k, input_shape_, conv_, policy().compute_dtype);
      if (packed.is_packed()) k.relayout_from(packed);
    } else if (k.is_packed()) {
      k.relayout_from(k.plain());
    }
  }

  int64_t filters_;
  std::array<int64_t, 2> kernel_size_;
  Shape input_shape_;    // as built
  bool packed_ = false;  // kiln::optimize asked for the blocked kernel layout
  Conv2DOptions opt_;
  Conv2dAttrs conv_;
  Variable kernel_, bias_;
};

Layer from_config(const Config& config) {
  ConfigReader r(config, "Conv2D config");
  BaseLayerConfig base = read_base_config(r);
  int64_t filters = r.integer("filters", 1, kMaxConfigSize);
  Conv2DOptions opt;
  Conv2DCommonConfig common = read_conv2d_common(r, opt);
  opt.groups = r.integer("groups", opt.groups, 1, kMaxConfigSize);
  opt.kernel_initializer = read_initializer(r, "kernel_initializer", opt.kernel_initializer);
  r.finish();
  return with_base_config(Conv2D(filters, common.kernel_size, common.activation, opt, base.name), base);
}

const bool registered = register_builtin_layer("Conv2D", from_config);

}  // namespace

Layer Conv2D(int64_t filters, std::array<int64_t, 2> kernel_size, const std::string& activation,
             const Conv2DOptions& options, const std::string& name) {
  return Layer(std::make_shared<Conv2DImpl>(filters, kernel_size, activation, options, name));
}

Layer Conv2D(int64_t filters, int64_t kernel_size, const std::string& activation, const Conv2DOptions& options,
             const std::string& name) {
  return Conv2D(filters, {kernel_size, kernel_size}, activation, options, name);
}

}  // namespace kiln::nn
