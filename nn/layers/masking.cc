#include "nn/layers/masking.h"

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class MaskingImpl : public LayerImpl {
 public:
  MaskingImpl(float mask_value, const std::string& name) : LayerImpl("masking", name), mask_value_(mask_value) {}

  Tensor call(const std::vector<Tensor>& in, bool) override {
    expect_rank(in[0], 2);
    return in[0] * keep(in[0], /*keepdims=*/true);
  }

  Tensor compute_mask(const std::vector<Tensor>& in, const std::vector<Tensor>&) const override {
    return cast(keep(in[0], /*keepdims=*/false), DType::f32);
  }
  bool supports_masking() const override { return true; }

  std::string class_name() const override { return "Masking"; }
  Config config() const override { return LayerImpl::config().set("mask_value", mask_value_); }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1) return std::nullopt;
    return in[0];
  }

 private:
  // 1 where any feature differs from mask_value (Keras: any(not_equal(x, v), axis=-1)), in x's dtype.
  Tensor keep(const Tensor& x, bool keepdims) const {
    Tensor differs = 1.f - equal(x, Tensor::scalar(mask_value_, x.dtype()));
    return reduce_max(differs, {-1}, keepdims);
  }

  float mask_value_;
};

Layer from_config(const Config& config) {
  ConfigReader r(config, "Masking config");
  BaseLayerConfig base = read_base_config(r);
  float mask_value = r.real("mask_value", 0.f);
  r.finish();
  return with_base_config(Masking(mask_value, base.name), base);
}

const bool registered = register_builtin_layer("Masking", from_config);

}  // namespace

Layer Masking(float mask_value, const std::string& name) {
  return Layer(std::make_shared<MaskingImpl>(mask_value, name));
}

}  // namespace kiln::nn
