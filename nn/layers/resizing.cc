#include "nn/layers/resizing.h"

#include <stdexcept>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

// Kiln's name for a Keras interpolation, refusing the ones Kiln does not implement.
Interpolation interpolation_of(const std::string& layer, const std::string& name) {
  if (name == "nearest" || name == "bilinear") return interpolation_from_name(name);
  throw std::invalid_argument(layer + ": interpolation '" + name +
                              "' is not supported (Kiln implements 'nearest' and 'bilinear')");
}

class UpSampling2DImpl : public LayerImpl {
 public:
  UpSampling2DImpl(std::array<int64_t, 2> size, const std::string& interpolation, const std::string& name)
      : LayerImpl("up_sampling2d", name), size_(size), interpolation_name_(interpolation),
        interpolation_(interpolation_of("UpSampling2D", interpolation)) {
    if (size[0] <= 0 || size[1] <= 0) throw std::invalid_argument("UpSampling2D: size must be positive");
  }

  Tensor call(const std::vector<Tensor>& in, bool) override {
    expect_rank(in[0], 4, 4);
    return upsample2d(in[0], size_, interpolation_);
  }

  std::string class_name() const override { return "UpSampling2D"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("size", Config::pair(size_));
    c.set("data_format", "channels_last");
    c.set("interpolation", interpolation_name_);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != 4) return std::nullopt;
    Shape s = in[0];
    s[1] *= size_[0];
    s[2] *= size_[1];
    return s;
  }

 private:
  std::array<int64_t, 2> size_;
  std::string interpolation_name_;
  Interpolation interpolation_;
};

class ResizingImpl : public LayerImpl {
 public:
  ResizingImpl(int64_t height, int64_t width, const ResizingOptions& opt, const std::string& name)
      : LayerImpl("resizing", name), opt_(opt) {
    if (height <= 0 || width <= 0) throw std::invalid_argument("Resizing: height and width must be positive");
    attrs_.size = {height, width};
    attrs_.interpolation = interpolation_of("Resizing", opt.interpolation);
    auto refuse = [](const char* what) {
      throw std::invalid_argument(std::string("Resizing: ") + what + " is not supported");
    };
    if (opt.crop_to_aspect_ratio) refuse("crop_to_aspect_ratio=True");
    if (opt.pad_to_aspect_ratio) refuse("pad_to_aspect_ratio=True");
    if (opt.antialias) refuse("antialias=True");
    if (opt.fill_mode != "constant") refuse(("fill_mode '" + opt.fill_mode + "'").c_str());
  }

  Tensor call(const std::vector<Tensor>& in, bool) override {
    expect_rank(in[0], 4, 4);
    return resize2d(in[0], attrs_);
  }

  std::string class_name() const override { return "Resizing"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("height", attrs_.size[0]);
    c.set("width", attrs_.size[1]);
    c.set("interpolation", opt_.interpolation);
    c.set("crop_to_aspect_ratio", opt_.crop_to_aspect_ratio);
    c.set("pad_to_aspect_ratio", opt_.pad_to_aspect_ratio);
    c.set("fill_mode", opt_.fill_mode);
    c.set("fill_value", static_cast<double>(opt_.fill_value));
    c.set("antialias", opt_.antialias);
    c.set("data_format", "channels_last");
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != 4) return std::nullopt;
    return Shape{in[0][0], attrs_.size[0], attrs_.size[1], in[0][3]};
  }

 private:
  ResizingOptions opt_;
  Resize2dAttrs attrs_;
};

Layer up_sampling_from_config(const Config& config) {
  ConfigReader r(config, "UpSampling2D config");
  BaseLayerConfig base = read_base_config(r);
  std::array<int64_t, 2> size = r.pair("size", {2, 2}, 1, kMaxConfigSize);
  read_data_format(r);
  std::string interpolation = r.string("interpolation", "nearest");
  r.finish();
  return with_base_config(UpSampling2D(size, interpolation, base.name), base);
}

Layer resizing_from_config(const Config& config) {
  ConfigReader r(config, "Resizing config");
  BaseLayerConfig base = read_base_config(r);
  int64_t height = r.integer("height", 1, kMaxConfigSize);
  int64_t width = r.integer("width", 1, kMaxConfigSize);
  ResizingOptions opt;
  opt.interpolation = r.string("interpolation", opt.interpolation);
  opt.crop_to_aspect_ratio = r.boolean("crop_to_aspect_ratio", opt.crop_to_aspect_ratio);
  opt.pad_to_aspect_ratio = r.boolean("pad_to_aspect_ratio", opt.pad_to_aspect_ratio);
  opt.fill_mode = r.string("fill_mode", opt.fill_mode);
  opt.fill_value = r.real("fill_value", opt.fill_value);
  opt.antialias = r.boolean("antialias", opt.antialias);
  read_data_format(r);
  r.finish();
  return with_base_config(Resizing(height, width, opt, base.name), base);
}

const bool registered_up_sampling = register_builtin_layer("UpSampling2D", up_sampling_from_config);
const bool registered_resizing = register_builtin_layer("Resizing", resizing_from_config);

}  // namespace

Layer UpSampling2D(std::array<int64_t, 2> size, const std::string& interpolation, const std::string& name) {
  return Layer(std::make_shared<UpSampling2DImpl>(size, interpolation, name));
}

Layer Resizing(int64_t height, int64_t width, const ResizingOptions& options, const std::string& name) {
  return Layer(std::make_shared<ResizingImpl>(height, width, options, name));
}

}  // namespace kiln::nn
