#include "nn/layers/zero_padding.h"

#include <stdexcept>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

using Pads = std::array<std::array<int64_t, 2>, 2>;

class ZeroPadding2DImpl : public LayerImpl {
 public:
  ZeroPadding2DImpl(const Pads& pads, const std::string& name) : LayerImpl("zero_padding2d", name), pads_(pads) {
    for (const auto& p : pads) {
      if (p[0] < 0 || p[1] < 0) throw std::invalid_argument("ZeroPadding2D: padding must not be negative");
    }
  }

  // Concatenating zero blocks keeps the op differentiable (concat's backward slices) without a
  // dedicated pad op; the copy is small next to the conv or pool that follows.
  Tensor call(const std::vector<Tensor>& in, bool) override {
    expect_rank(in[0], 4, 4);
    Tensor x = in[0];
    for (int axis = 1; axis <= 2; ++axis) x = pad_axis(x, axis, pads_[axis - 1]);
    return x;
  }

  std::string class_name() const override { return "ZeroPadding2D"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("padding", Config::list({Config::pair(pads_[0]), Config::pair(pads_[1])}));
    c.set("data_format", "channels_last");
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != 4) return std::nullopt;
    Shape s = in[0];
    s[1] += pads_[0][0] + pads_[0][1];
    s[2] += pads_[1][0] + pads_[1][1];
    return s;
  }

 private:
  static Tensor pad_axis(const Tensor& x, int axis, const std::array<int64_t, 2>& p) {
    if (p[0] == 0 && p[1] == 0) return x;
    std::vector<Tensor> parts;
    Shape s = x.shape();
    if (p[0] > 0) {
      s[axis] = p[0];
      parts.push_back(Tensor::zeros(s, x.dtype()));
    }
    parts.push_back(x);
    if (p[1] > 0) {
      s[axis] = p[1];
      parts.push_back(Tensor::zeros(s, x.dtype()));
    }
    return concat(parts, axis);
  }

  Pads pads_;
};

// Keras accepts an int, [rows, cols] (symmetric) or [[top, bottom], [left, right]].
Pads read_pads(ConfigReader& r) {
  const Config& v = r.get("padding");
  auto size = [&](const Config& c) {
    if (c.kind() != Config::Kind::integer || c.as_int() < 0 || c.as_int() > kMaxConfigSize) {
      r.fail("padding", "must hold integers in [0, 2^31]");
    }
    return c.as_int();
  };
  if (v.kind() == Config::Kind::integer) {
    int64_t p = size(v);
    return {{{p, p}, {p, p}}};
  }
  if (!v.is_list() || v.size() != 2) r.fail("padding", "must be an integer or a list of 2");
  Pads pads{};
  for (size_t i = 0; i < 2; ++i) {
    const Config& d = v[i];
    if (d.is_list()) {
      if (d.size() != 2) r.fail("padding", "each dimension needs [before, after]");
      pads[i] = {size(d[0]), size(d[1])};
    } else {
      int64_t p = size(d);
      pads[i] = {p, p};
    }
  }
  return pads;
}

Layer zero_padding_from_config(const Config& config) {
  ConfigReader r(config, "ZeroPadding2D config");
  BaseLayerConfig base = read_base_config(r);
  Pads pads = read_pads(r);
  read_data_format(r);
  r.finish();
  return with_base_config(ZeroPadding2D(pads, base.name), base);
}

const bool registered = register_builtin_layer("ZeroPadding2D", zero_padding_from_config);

}  // namespace

Layer ZeroPadding2D(std::array<std::array<int64_t, 2>, 2> padding, const std::string& name) {
  return Layer(std::make_shared<ZeroPadding2DImpl>(padding, name));
}
Layer ZeroPadding2D(int64_t padding, const std::string& name) {
  return ZeroPadding2D({{{padding, padding}, {padding, padding}}}, name);
}

}  // namespace kiln::nn
