#include "nn/layers/basic.h"

#include <atomic>
#include <stdexcept>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"

namespace kiln::nn {
namespace {

class DropoutImpl : public LayerImpl {
 public:
  DropoutImpl(float rate, uint64_t seed, const std::string& name)
      : LayerImpl("dropout", name), rate_(rate), seed_(seed ? seed : next_global_seed()) {
    if (!(rate >= 0 && rate < 1)) throw std::invalid_argument("Dropout: rate must be in [0, 1), got " + std::to_string(rate));
  }
  bool supports_masking() const override { return true; }
  Tensor call(const std::vector<Tensor>& in, bool training) override {
    const Tensor& x = in[0];
    if (!training || rate_ == 0) return x;
    RandomStream rs(dropout_call_seed(seed_, own_calls_));
    Tensor mask = Tensor::empty(x.shape(), DType::f32);
    float* m = mask.data<float>();
    const float keep_scale = 1.f / (1.f - rate_);
    for (int64_t i = 0; i < mask.numel(); ++i) m[i] = rs.uniform01() >= rate_ ? keep_scale : 0.f;
    return x * cast(mask, x.dtype());
  }

  std::string class_name() const override { return "Dropout"; }
  // The resolved seed, so a loaded model draws the masks the saved one would have drawn.
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("rate", rate_);
    c.set("seed", static_cast<int64_t>(seed_));  // the bits of the u64 seed
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1) return std::nullopt;
    return in[0];
  }

 private:
  float rate_;
  uint64_t seed_;
  std::atomic<int64_t> own_calls_{0};
};

class FlattenImpl : public LayerImpl {
 public:
  explicit FlattenImpl(const std::string& name) : LayerImpl("flatten", name) {}
  Tensor call(const std::vector<Tensor>& in, bool) override {
    expect_rank(in[0], 1);
    return in[0].ndim() == 1 ? reshape(in[0], {in[0].shape()[0], 1}) : flatten(in[0], 1);
  }
  std::string class_name() const override { return "Flatten"; }
  Config config() const override { return LayerImpl::config().set("data_format", "channels_last"); }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].empty()) return std::nullopt;
    int64_t rest = 1;
    for (size_t i = 1; i < in[0].size(); ++i) {
      if (in[0][i] != 0 && rest > INT64_MAX / in[0][i]) return std::nullopt;
      rest *= in[0][i];
    }
    return Shape{in[0][0], rest};
  }
};

class RescalingImpl : public LayerImpl {
 public:
  RescalingImpl(float scale, float offset, const std::string& name)
      : LayerImpl("rescaling", name), scale_(scale), offset_(offset) {}
  bool autocast_inputs() const override { return false; }
  Tensor call(const std::vector<Tensor>& in, bool) override {
    return affine(cast(in[0], policy().compute_dtype), scale_, offset_);
  }
  std::string class_name() const override { return "Rescaling"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("scale", scale_);
    c.set("offset", offset_);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1) return std::nullopt;
    return in[0];
  }

 private:
  float scale_, offset_;
};

Layer dropout_from_config(const Config& config) {
  ConfigReader r(config, "Dropout config");
  BaseLayerConfig base = read_base_config(r);
  float rate = r.real("rate");
  if (!(rate >= 0 && rate < 1)) r.fail("rate", "must be in [0, 1)");
  // Keras writes null for "no seed": draw one, as the constructor does for 0.
  int64_t seed = r.integer("seed", 0, INT64_MIN, INT64_MAX);
  r.finish();
  return with_base_config(Dropout(rate, static_cast<uint64_t>(seed), base.name), base);
}

Layer flatten_from_config(const Config& config) {
  ConfigReader r(config, "Flatten config");
  BaseLayerConfig base = read_base_config(r);
  read_data_format(r);
  r.finish();
  return with_base_config(Flatten(base.name), base);
}

Layer rescaling_from_config(const Config& config) {
  ConfigReader r(config, "Rescaling config");
  BaseLayerConfig base = read_base_config(r);
  float scale = r.real("scale");
  float offset = r.real("offset", 0.f);
  r.finish();
  return with_base_config(Rescaling(scale, offset, base.name), base);
}

const bool registered = register_builtin_layer("Dropout", dropout_from_config) &&
                        register_builtin_layer("Flatten", flatten_from_config) &&
                        register_builtin_layer("Rescaling", rescaling_from_config);

}  // namespace

Layer Dropout(float rate, uint64_t seed, const std::string& name) {
  return Layer(std::make_shared<DropoutImpl>(rate, seed, name));
}
Layer Flatten(const std::string& name) { return Layer(std::make_shared<FlattenImpl>(name)); }
Layer Rescaling(float scale, float offset, const std::string& name) {
  return Layer(std::make_shared<RescalingImpl>(scale, offset, name));
}

}  // namespace kiln::nn
