#include "nn/layers/pooling1d.h"

#include "nn/layers/layer_config.h"
#include "nn/mask.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class GlobalPool1DImpl : public LayerImpl {
 public:
  GlobalPool1DImpl(bool is_max, bool keepdims, const std::string& name)
      : LayerImpl(is_max ? "global_max_pooling1d" : "global_average_pooling1d", name),
        is_max_(is_max),
        keepdims_(keepdims) {}

  Tensor call(const std::vector<Tensor>& in, bool) override {
    expect_rank(in[0], 3, 3);
    return is_max_ ? reduce_max(in[0], {1}, keepdims_) : reduce_mean(in[0], {1}, keepdims_);
  }

  Tensor call_with_mask(const std::vector<Tensor>& in, const std::vector<Tensor>& masks, bool training) override {
    if (is_max_ || !masks[0].defined()) return call(in, training);
    expect_rank(in[0], 3, 3);
    Tensor m = mask_for_value(masks[0], in[0].dtype());
    return reduce_sum(in[0] * m, {1}, keepdims_) / reduce_sum(m, {1}, keepdims_);
  }
  // GlobalAveragePooling1D consumes the mask (Keras: supports_masking, compute_mask None);
  // GlobalMaxPooling1D does not support masking. Either way none comes out.
  Tensor compute_mask(const std::vector<Tensor>&, const std::vector<Tensor>&) const override { return Tensor(); }

  std::string class_name() const override { return is_max_ ? "GlobalMaxPooling1D" : "GlobalAveragePooling1D"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("data_format", "channels_last");
    c.set("keepdims", keepdims_);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != 3) return std::nullopt;
    const Shape& s = in[0];
    return keepdims_ ? Shape{s[0], 1, s[2]} : Shape{s[0], s[2]};
  }

 private:
  bool is_max_, keepdims_;
};

Layer from_config(const Config& config, bool is_max) {
  ConfigReader r(config, is_max ? "GlobalMaxPooling1D config" : "GlobalAveragePooling1D config");
  BaseLayerConfig base = read_base_config(r);
  read_data_format(r);
  bool keepdims = r.boolean("keepdims", false);
  r.finish();
  Layer l = is_max ? GlobalMaxPooling1D(keepdims, base.name) : GlobalAveragePooling1D(keepdims, base.name);
  return with_base_config(l, base);
}

Layer avg_from_config(const Config& c) { return from_config(c, false); }
Layer max_from_config(const Config& c) { return from_config(c, true); }

const bool registered = register_builtin_layer("GlobalAveragePooling1D", avg_from_config) &&
                        register_builtin_layer("GlobalMaxPooling1D", max_from_config);

}  // namespace

Layer GlobalAveragePooling1D(bool keepdims, const std::string& name) {
  return Layer(std::make_shared<GlobalPool1DImpl>(false, keepdims, name));
}

Layer GlobalMaxPooling1D(bool keepdims, const std::string& name) {
  return Layer(std::make_shared<GlobalPool1DImpl>(true, keepdims, name));
}

}  // namespace kiln::nn
