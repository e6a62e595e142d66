#include "nn/layers/reshape.h"

#include <algorithm>
#include <stdexcept>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

std::string ints_str(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + ")";
}

class ReshapeImpl : public LayerImpl {
 public:
  ReshapeImpl(const std::vector<int64_t>& target, const std::string& name) : LayerImpl("reshape", name), target_(target) {
    if (target.empty()) throw std::invalid_argument("Reshape: target_shape is empty");
    int unknown = 0;
    for (int64_t d : target) {
      if (d == -1) ++unknown;
      else if (d < 1 || d > kMaxConfigSize) {
        throw std::invalid_argument("Reshape: target_shape " + ints_str(target) + " holds " + std::to_string(d) +
                                    " (each entry is in [1, 2^31] or -1)");
      }
    }
    if (unknown > 1) throw std::invalid_argument("Reshape: target_shape " + ints_str(target) + " has more than one -1");
  }
  Tensor call(const std::vector<Tensor>& in, bool) override {
    expect_rank(in[0], 1);
    std::optional<Shape> out = output_shape(in[0].shape());
    if (!out) {
      throw std::invalid_argument("layer '" + name() + "' (Reshape): input " + in[0].describe() +
                                  " cannot be reshaped to target_shape " + ints_str(target_));
    }
    return reshape(in[0], *out);
  }
  std::string class_name() const override { return "Reshape"; }
  Config config() const override {
    std::vector<Config> t(target_.begin(), target_.end());
    return LayerImpl::config().set("target_shape", Config::list(t));
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].empty()) return std::nullopt;
    return output_shape(in[0]);
  }

 private:
  // [batch, target...] with the -1 resolved; nullopt when the sizes do not agree.
  std::optional<Shape> output_shape(const Shape& in) const {
    int64_t have = 1, known = 1;
    for (size_t i = 1; i < in.size(); ++i) {
      if (in[i] < 0) return std::nullopt;
      if (in[i] != 0 && have > INT64_MAX / in[i]) return std::nullopt;
      have *= in[i];
    }
    for (int64_t d : target_) {
      if (d == -1) continue;
      if (known > INT64_MAX / d) return std::nullopt;
      known *= d;
    }
    Shape out{in[0]};
    for (int64_t d : target_) {
      if (d != -1) {
        out.push_back(d);
      } else if (have % known != 0) {
        return std::nullopt;
      } else {
        out.push_back(have / known);
        known = have;
      }
    }
    if (known != have) return std::nullopt;
    return out;
  }

  std::vector<int64_t> target_;
};

class PermuteImpl : public LayerImpl {
 public:
  PermuteImpl(const std::vector<int>& dims, const std::string& name) : LayerImpl("permute", name), dims_(dims) {
    std::vector<int> sorted = dims;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (sorted[i] != static_cast<int>(i) + 1) {
        throw std::invalid_argument("Permute: dims " + ints_str(std::vector<int64_t>(dims.begin(), dims.end())) +
                                    " is not a permutation of 1.." + std::to_string(dims.size()) +
                                    " (1-based, the batch excluded)");
      }
    }
    if (dims.empty()) throw std::invalid_argument("Permute: dims is empty");
  }
  Tensor call(const std::vector<Tensor>& in, bool) override {
    if (in[0].ndim() != static_cast<int>(dims_.size()) + 1) {
      throw std::invalid_argument("layer '" + name() + "' (Permute): dims of length " + std::to_string(dims_.size()) +
                                  " need an input of rank " + std::to_string(dims_.size() + 1) + ", got " +
                                  in[0].describe());
    }
    std::vector<int> perm{0};
    perm.insert(perm.end(), dims_.begin(), dims_.end());
    return permute(in[0], perm);
  }
  std::string class_name() const override { return "Permute"; }
  Config config() const override {
    std::vector<Config> d(dims_.begin(), dims_.end());
    return LayerImpl::config().set("dims", Config::list(d));
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != dims_.size() + 1) return std::nullopt;
    Shape out{in[0][0]};
    for (int d : dims_) out.push_back(in[0][d]);
    return out;
  }

 private:
  std::vector<int> dims_;
};

std::vector<int64_t> read_int_list(ConfigReader& r, const std::string& key, int64_t lo, int64_t hi) {
  const Config& v = r.get(key);
  if (!v.is_list()) r.fail(key, "must be a list of integers");
  std::vector<int64_t> out;
  for (const Config& item : v.items()) {
    if (item.kind() != Config::Kind::integer || item.as_int() < lo || item.as_int() > hi) {
      r.fail(key, "must hold integers in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    out.push_back(item.as_int());
  }
  return out;
}

Layer reshape_from_config(const Config& config) {
  ConfigReader r(config, "Reshape config");
  BaseLayerConfig base = read_base_config(r);
  std::vector<int64_t> target = read_int_list(r, "target_shape", -1, kMaxConfigSize);
  r.finish();
  try {
    return with_base_config(Reshape(target, base.name), base);
  } catch (const std::invalid_argument& e) {
    r.fail("target_shape", e.what());
  }
}

Layer permute_from_config(const Config& config) {
  ConfigReader r(config, "Permute config");
  BaseLayerConfig base = read_base_config(r);
  std::vector<int64_t> dims = read_int_list(r, "dims", 1, 64);
  r.finish();
  try {
    return with_base_config(Permute(std::vector<int>(dims.begin(), dims.end()), base.name), base);
  } catch (const std::invalid_argument& e) {
    r.fail("dims", e.what());
  }
}

const bool registered =
    register_builtin_layer("Reshape", reshape_from_config) && register_builtin_layer("Permute", permute_from_config);

}  // namespace

Layer Reshape(const std::vector<int64_t>& target_shape, const std::string& name) {
  return Layer(std::make_shared<ReshapeImpl>(target_shape, name));
}

Layer Permute(const std::vector<int>& dims, const std::string& name) {
  return Layer(std::make_shared<PermuteImpl>(dims, name));
}

}  // namespace kiln::nn
