#include "nn/layers/pooling.h"

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class Pool2DImpl : public LayerImpl {
 public:
  Pool2DImpl(bool is_max, std::array<int64_t, 2> pool, std::array<int64_t, 2> strides, const std::string& padding,
             const std::string& name)
      : LayerImpl(is_max ? "max_pooling2d" : "average_pooling2d", name), is_max_(is_max), padding_(padding) {
    opt_.pool_size = pool;
    opt_.strides = strides;
    opt_.padding = padding_from_name(padding);
  }
  Tensor call(const std::vector<Tensor>& in, bool) override {
    expect_rank(in[0], 4, 4);
    return is_max_ ? max_pool2d(in[0], opt_) : avg_pool2d(in[0], opt_);
  }

  std::string class_name() const override { return is_max_ ? "MaxPooling2D" : "AveragePooling2D"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("pool_size", Config::pair(opt_.pool_size));
    c.set("strides", Config::pair(strides()));  // resolved, as Keras stores them
    c.set("padding", padding_);
    c.set("data_format", "channels_last");
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != 4) return std::nullopt;
    const Shape& s = in[0];
    std::array<int64_t, 2> st = strides();
    SpatialPlan h = plan_spatial(s[1], opt_.pool_size[0], st[0], 1, opt_.padding, class_name().c_str(), shape_str(s));
    SpatialPlan w = plan_spatial(s[2], opt_.pool_size[1], st[1], 1, opt_.padding, class_name().c_str(), shape_str(s));
    return Shape{s[0], h.out, w.out, s[3]};
  }
  double compute_cost(const std::vector<Shape>& in) const override {
    std::optional<Shape> out = compute_output_shape(in);
    if (!out) return LayerImpl::compute_cost(in);
    double n = 1;
    for (int64_t d : *out) n *= static_cast<double>(d);
    return n * static_cast<double>(opt_.pool_size[0]) * static_cast<double>(opt_.pool_size[1]) +
           LayerImpl::compute_cost(in);
  }

 private:
  std::array<int64_t, 2> strides() const {
    return {opt_.strides[0] ? opt_.strides[0] : opt_.pool_size[0], opt_.strides[1] ? opt_.strides[1] : opt_.pool_size[1]};
  }

  bool is_max_;
  std::string padding_;
  Pool2dAttrs opt_;
};

class GlobalPoolImpl : public LayerImpl {
 public:
  GlobalPoolImpl(bool is_max, bool keepdims, const std::string& name)
      : LayerImpl(is_max ? "global_max_pooling2d" : "global_average_pooling2d", name),
        is_max_(is_max),
        keepdims_(keepdims) {}
  Tensor call(const std::vector<Tensor>& in, bool) override {
    expect_rank(in[0], 4, 4);
    return is_max_ ? global_max_pool2d(in[0], keepdims_) : global_avg_pool2d(in[0], keepdims_);
  }

  std::string class_name() const override { return is_max_ ? "GlobalMaxPooling2D" : "GlobalAveragePooling2D"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("data_format", "channels_last");
    c.set("keepdims", keepdims_);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != 4) return std::nullopt;
    const Shape& s = in[0];
    return keepdims_ ? Shape{s[0], 1, 1, s[3]} : Shape{s[0], s[3]};
  }

 private:
  bool is_max_;
  bool keepdims_;
};

Layer pool_from_config(const Config& config, bool is_max) {
  ConfigReader r(config, is_max ? "MaxPooling2D config" : "AveragePooling2D config");
  BaseLayerConfig base = read_base_config(r);
  std::array<int64_t, 2> pool = r.pair("pool_size", {2, 2}, 1, kMaxConfigSize);
  std::array<int64_t, 2> strides = r.pair("strides", pool, 1, kMaxConfigSize);
  std::string padding = read_padding(r, "valid");
  read_data_format(r);
  r.finish();
  Layer l = is_max ? MaxPooling2D(pool, strides, padding, base.name) : AveragePooling2D(pool, strides, padding, base.name);
  return with_base_config(l, base);
}

Layer max_pool_from_config(const Config& c) { return pool_from_config(c, true); }
Layer avg_pool_from_config(const Config& c) { return pool_from_config(c, false); }

Layer global_pool_from_config(const Config& config, bool is_max) {
  ConfigReader r(config, is_max ? "GlobalMaxPooling2D config" : "GlobalAveragePooling2D config");
  BaseLayerConfig base = read_base_config(r);
  read_data_format(r);
  bool keepdims = r.boolean("keepdims", false);
  r.finish();
  return with_base_config(is_max ? GlobalMaxPooling2D(keepdims, base.name) : GlobalAveragePooling2D(keepdims, base.name),
                          base);
}

Layer global_avg_pool_from_config(const Config& c) { return global_pool_from_config(c, false); }
Layer global_max_pool_from_config(const Config& c) { return global_pool_from_config(c, true); }

const bool registered = register_builtin_layer("MaxPooling2D", max_pool_from_config) &&
                        register_builtin_layer("AveragePooling2D", avg_pool_from_config) &&
                        register_builtin_layer("GlobalAveragePooling2D", global_avg_pool_from_config) &&
                        register_builtin_layer("GlobalMaxPooling2D", global_max_pool_from_config);

}  // namespace

Layer MaxPooling2D(std::array<int64_t, 2> pool, std::array<int64_t, 2> strides, const std::string& padding,
                   const std::string& name) {
  return Layer(std::make_shared<Pool2DImpl>(true, pool, strides, padding, name));
}

Layer AveragePooling2D(std::array<int64_t, 2> pool, std::array<int64_t, 2> strides, const std::string& padding,
                       const std::string& name) {
  return Layer(std::make_shared<Pool2DImpl>(false, pool, strides, padding, name));
}

Layer GlobalAveragePooling2D(bool keepdims, const std::string& name) {
  return Layer(std::make_shared<GlobalPoolImpl>(false, keepdims, name));
}

Layer GlobalMaxPooling2D(bool keepdims, const std::string& name) {
  return Layer(std::make_shared<GlobalPoolImpl>(true, keepdims, name));
}

}  // namespace kiln::nn
