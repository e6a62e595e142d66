#include "nn/layers/zero_padding.h"

#include <stdexcept>
#include <vector>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

using Pair = std::array<int64_t, 2>;

// ZeroPadding1D and ZeroPadding2D: {before, after} zeros on each spatial axis (1 .. dims) of
// a channels-last input of rank dims + 2.
class ZeroPaddingImpl : public LayerImpl {
 public:
  ZeroPaddingImpl(std::vector<Pair> pads, const std::string& name)
      : LayerImpl(pads.size() == 1 ? "zero_padding1d" : "zero_padding2d", name), pads_(std::move(pads)) {
    for (const Pair& p : pads_) {
      if (p[0] < 0 || p[1] < 0) {
        throw std::invalid_argument(class_name() + ": padding must not be negative, got (" + std::to_string(p[0]) + ", " +
                                    std::to_string(p[1]) + ")");
      }
    }
  }

  Tensor call(const std::vector<Tensor>& in, bool) override {
    const int rank = static_cast<int>(pads_.size()) + 2;
    expect_rank(in[0], rank, rank);
    PadAttrs a;
    a.before.assign(rank, 0);
    a.after.assign(rank, 0);
    for (size_t i = 0; i < pads_.size(); ++i) {
      a.before[i + 1] = pads_[i][0];
      a.after[i + 1] = pads_[i][1];
    }
    return pad(in[0], a);
  }

  std::string class_name() const override { return pads_.size() == 1 ? "ZeroPadding1D" : "ZeroPadding2D"; }
  Config config() const override {
    Config c = LayerImpl::config();
    if (pads_.size() == 1) {
      c.set("padding", Config::pair(pads_[0]));
    } else {
      c.set("padding", Config::list({Config::pair(pads_[0]), Config::pair(pads_[1])}));
    }
    c.set("data_format", "channels_last");
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != pads_.size() + 2) return std::nullopt;
    Shape s = in[0];
    for (size_t i = 0; i < pads_.size(); ++i) {
      if (s[i + 1] >= 0) s[i + 1] += pads_[i][0] + pads_[i][1];
    }
    return s;
  }

 private:
  std::vector<Pair> pads_;
};

int64_t read_size(ConfigReader& r, const Config& c) {
  if (c.kind() != Config::Kind::integer || c.as_int() < 0 || c.as_int() > kMaxConfigSize) {
    r.fail("padding", "must hold integers in [0, 2^31]");
  }
  return c.as_int();
}

// An int (both sides) or [before, after].
Pair read_pair(ConfigReader& r, const Config& c) {
  if (c.is_list()) {
    if (c.size() != 2) r.fail("padding", "each dimension needs [before, after]");
    return {read_size(r, c[0]), read_size(r, c[1])};
  }
  int64_t p = read_size(r, c);
  return {p, p};
}

// Keras accepts an int, [rows, cols] (symmetric) or [[top, bottom], [left, right]].
std::array<Pair, 2> read_pads_2d(ConfigReader& r) {
  const Config& v = r.get("padding");
  if (v.kind() == Config::Kind::integer) {
    int64_t p = read_size(r, v);
    return {{{p, p}, {p, p}}};
  }
  if (!v.is_list() || v.size() != 2) r.fail("padding", "must be an integer or a list of 2");
  return {read_pair(r, v[0]), read_pair(r, v[1])};
}

Layer zero_padding_2d_from_config(const Config& config) {
  ConfigReader r(config, "ZeroPadding2D config");
  BaseLayerConfig base = read_base_config(r);
  std::array<Pair, 2> pads = read_pads_2d(r);
  read_data_format(r);
  r.finish();
  return with_base_config(ZeroPadding2D(pads, base.name), base);
}

// Keras accepts an int or [left, right].
Layer zero_padding_1d_from_config(const Config& config) {
  ConfigReader r(config, "ZeroPadding1D config");
  BaseLayerConfig base = read_base_config(r);
  Pair pads = read_pair(r, r.get("padding"));
  read_data_format(r);
  r.finish();
  return with_base_config(ZeroPadding1D(pads, base.name), base);
}

const bool registered_2d = register_builtin_layer("ZeroPadding2D", zero_padding_2d_from_config);
const bool registered_1d = register_builtin_layer("ZeroPadding1D", zero_padding_1d_from_config);

}  // namespace

Layer ZeroPadding2D(std::array<std::array<int64_t, 2>, 2> padding, const std::string& name) {
  return Layer(std::make_shared<ZeroPaddingImpl>(std::vector<Pair>{padding[0], padding[1]}, name));
}
Layer ZeroPadding2D(int64_t padding, const std::string& name) {
  return ZeroPadding2D({{{padding, padding}, {padding, padding}}}, name);
}
Layer ZeroPadding1D(std::array<int64_t, 2> padding, const std::string& name) {
  return Layer(std::make_shared<ZeroPaddingImpl>(std::vector<Pair>{padding}, name));
}
Layer ZeroPadding1D(int64_t padding, const std::string& name) { return ZeroPadding1D({padding, padding}, name); }

}  // namespace kiln::nn
