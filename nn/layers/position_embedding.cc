#include "nn/layers/position_embedding.h"

#include <stdexcept>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class AddPositionEmbeddingImpl : public LayerImpl {
 public:
  AddPositionEmbeddingImpl(int64_t sequence_length, const std::string& initializer, const std::string& name)
      : LayerImpl("add_position_embedding", name), sequence_length_(sequence_length), initializer_(initializer) {
    if (sequence_length <= 0) {
      throw std::invalid_argument("AddPositionEmbedding: sequence_length must be positive, got " +
                                  std::to_string(sequence_length));
    }
  }

  void build(const std::vector<Shape>& shapes) override {
    check_shape(shapes[0]);
    embeddings_ = add_weight("embeddings", {sequence_length_, shapes[0].back()}, initializer_);
  }

  Tensor call(const std::vector<Tensor>& in, bool) override {
    const Tensor& x = in[0];
    check_shape(x.shape());
    const int64_t steps = x.shape()[1], features = x.shape()[2];
    if (embeddings_.shape()[1] != features) {
      throw std::invalid_argument("layer '" + name() + "' (AddPositionEmbedding) was built for " +
                                  std::to_string(embeddings_.shape()[1]) + " features but got input " + x.describe());
    }
    Tensor rows = compute_value(embeddings_);
    if (steps != sequence_length_) rows = slice(rows, 0, 0, steps);
    return x + rows;
  }

  bool supports_masking() const override { return true; }
  std::string class_name() const override { return "AddPositionEmbedding"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("sequence_length", sequence_length_);
    c.set("initializer", initializer_);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != 3 || in[0][1] > sequence_length_) return std::nullopt;
    return in[0];
  }

 private:
  void check_shape(const Shape& s) const {
    if (s.size() != 3 || s[1] > sequence_length_) {
      throw std::invalid_argument("layer '" + name() + "' (AddPositionEmbedding) takes [batch, steps, features] with " +
                                  "steps <= sequence_length " + std::to_string(sequence_length_) + ", got " +
                                  shape_str(s));
    }
  }

  int64_t sequence_length_;
  std::string initializer_;
  Variable embeddings_;
};

Layer from_config(const Config& config) {
  ConfigReader r(config, "AddPositionEmbedding config");
  BaseLayerConfig base = read_base_config(r);
  int64_t sequence_length = r.integer("sequence_length", 1, kMaxConfigSize);
  std::string initializer = read_initializer(r, "initializer", "glorot_uniform");
  r.finish();
  return with_base_config(AddPositionEmbedding(sequence_length, initializer, base.name), base);
}

const bool registered = register_builtin_layer("AddPositionEmbedding", from_config);

}  // namespace

Layer AddPositionEmbedding(int64_t sequence_length, const std::string& initializer, const std::string& name) {
  return Layer(std::make_shared<AddPositionEmbeddingImpl>(sequence_length, initializer, name));
}

}  // namespace kiln::nn
