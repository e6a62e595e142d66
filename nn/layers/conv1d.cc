#include "nn/layers/conv1d.h"

#include <stdexcept>

#include "nn/layers/conv_activation.h"
#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class Conv1DImpl : public ActivatedConvLayer {
 public:
  Conv1DImpl(int64_t filters, int64_t kernel, const std::string& activation, const Conv1DOptions& opt,
             const std::string& name)
      : ActivatedConvLayer("conv1d", name, activation), filters_(filters), kernel_size_(kernel), opt_(opt) {
    if (filters <= 0 || kernel <= 0 || opt.strides <= 0 || opt.dilation_rate <= 0 || opt.groups <= 0) {
      throw std::invalid_argument("Conv1D: filters, kernel_size, strides, dilation_rate and groups must be positive");
    }
    if (opt.strides > 1 && opt.dilation_rate > 1) {
      throw std::invalid_argument("Conv1D: strides > 1 is not supported with dilation_rate > 1 (strides=" +
                                  std::to_string(opt.strides) + ", dilation_rate=" + std::to_string(opt.dilation_rate) +
                                  "), as in Keras");
    }
    if (filters % opt.groups != 0) {
      throw std::invalid_argument("Conv1D: groups=" + std::to_string(opt.groups) + " must divide filters " +
                                  std::to_string(filters));
    }
    conv_.strides = {1, opt.strides};
    conv_.dilation = {1, opt.dilation_rate};
    conv_.groups = opt.groups;
    if (opt.padding == "causal") {
      if (kernel > kMaxConfigSize || opt.dilation_rate > kMaxConfigSize) {
        throw std::invalid_argument("Conv1D: kernel_size and dilation_rate must be at most 2^31");
      }
      conv_.padding = Padding::explicit_pads;
      conv_.pads = {0, (kernel - 1) * opt.dilation_rate, 0, 0};
    } else {
      try {
        conv_.padding = padding_from_name(opt.padding);
      } catch (const std::invalid_argument&) {
        throw std::invalid_argument("Conv1D: unknown padding '" + opt.padding + "' (expected 'valid', 'same' or 'causal')");
      }
    }
    conv_.activation = activation_.fused();
  }

  void build(const std::vector<Shape>& shapes) override {
    if (shapes[0].size() != 3) {
      throw std::invalid_argument("layer '" + name() + "' (Conv1D) expects [batch, steps, channels] input, got shape " +
                                  shape_str(shapes[0]));
    }
    const int64_t c = shapes[0][2];
    if (c % opt_.groups != 0) {
      throw std::invalid_argument("layer '" + name() + "': groups=" + std::to_string(opt_.groups) +
                                  " must divide input channels " + std::to_string(c));
    }
    kernel_ = add_weight("kernel", {kernel_size_, c / opt_.groups, filters_}, opt_.kernel_initializer);
    if (opt_.use_bias) bias_ = add_weight("bias", {filters_}, opt_.bias_initializer);
  }

  std::string class_name() const override { return "Conv1D"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("filters", filters_);
    c.set("kernel_size", Config::list({kernel_size_}));
    c.set("strides", Config::list({opt_.strides}));
    c.set("padding", opt_.padding);
    c.set("data_format", "channels_last");
    c.set("dilation_rate", Config::list({opt_.dilation_rate}));
    c.set("groups", opt_.groups);
    c.set("activation", activation_.config_name());
    c.set("use_bias", opt_.use_bias);
    c.set("kernel_initializer", opt_.kernel_initializer);
    c.set("bias_initializer", opt_.bias_initializer);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != 3) return std::nullopt;
    const Shape& s = in[0];
    SpatialPlan steps = plan_spatial(s[1], kernel_size_, opt_.strides, opt_.dilation_rate, conv_.padding, "Conv1D",
                                     shape_str(s), pads_of_dim(conv_.pads, 1));
    return Shape{s[0], steps.out, filters_};
  }
  double compute_cost(const std::vector<Shape>& in) const override {
    std::optional<Shape> out = compute_output_shape(in);
    if (!out) return LayerImpl::compute_cost(in);
    double n = 1;
    for (int64_t d : *out) n *= static_cast<double>(d);
    return n * static_cast<double>(kernel_size_) * static_cast<double>(in[0][2] / opt_.groups);
  }


 private:
  const Conv2dAttrs& output_conv() const override { return conv_; }
  // [N, steps, C] as [N, 1, steps, C], the kernel [K, C/g, F] as [1, K, C/g, F]: the same bytes.
  Tensor convolve(const Tensor& x, const Conv2dAttrs& conv) override {
    expect_rank(x, 3, 3);
    const Shape& s = x.shape();
    const Tensor& k = kernel_.value();
    Tensor y = conv2d(reshape(x, {s[0], 1, s[1], s[2]}), reshape(k, {1, k.shape()[0], k.shape()[1], k.shape()[2]}),
                      opt_.use_bias ? bias_.value() : Tensor(), conv);
    return reshape(y, {s[0], y.shape()[2], filters_});
  }

  int64_t filters_;
  int64_t kernel_size_;
  Conv1DOptions opt_;
  Conv2dAttrs conv_;
  Variable kernel_, bias_;
};

// Keras writes 1-D sizes as one-element lists; an int is accepted too.
int64_t read_size(ConfigReader& r, const std::string& key, int64_t fallback) {
  const Config* v = r.optional(key);
  if (!v) return fallback;
  const Config& item = v->is_list() && v->size() == 1 ? (*v)[0] : *v;
  if (item.kind() != Config::Kind::integer || item.as_int() < 1 || item.as_int() > kMaxConfigSize) {
    r.fail(key, "must be an integer in [1, 2^31] or a list of one");
  }
  return item.as_int();
}

Layer from_config(const Config& config) {
  ConfigReader r(config, "Conv1D config");
  BaseLayerConfig base = read_base_config(r);
  int64_t filters = r.integer("filters", 1, kMaxConfigSize);
  if (!r.has("kernel_size")) r.fail("kernel_size", "is required");
  int64_t kernel = read_size(r, "kernel_size", 1);
  Conv1DOptions opt;
  opt.strides = read_size(r, "strides", opt.strides);
  opt.padding = r.string("padding", opt.padding);
  if (opt.padding != "valid" && opt.padding != "same" && opt.padding != "causal") {
    r.fail("padding", "is '" + opt.padding + "', expected 'valid', 'same' or 'causal'");
  }
  read_data_format(r);
  opt.dilation_rate = read_size(r, "dilation_rate", opt.dilation_rate);
  opt.groups = r.integer("groups", opt.groups, 1, kMaxConfigSize);
  std::string activation = read_activation(r, "activation", "linear");
  opt.use_bias = r.boolean("use_bias", opt.use_bias);
  opt.kernel_initializer = read_initializer(r, "kernel_initializer", opt.kernel_initializer);
  opt.bias_initializer = read_initializer(r, "bias_initializer", opt.bias_initializer);
  r.finish();
  return with_base_config(Conv1D(filters, kernel, activation, opt, base.name), base);
}

const bool registered = register_builtin_layer("Conv1D", from_config);

}  // namespace

Layer Conv1D(int64_t filters, int64_t kernel_size, const std::string& activation, const Conv1DOptions& options,
             const std::string& name) {
  return Layer(std::make_shared<Conv1DImpl>(filters, kernel_size, activation, options, name));
}

}  // namespace kiln::nn
