#include "nn/layers/embedding.h"

#include <stdexcept>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class EmbeddingImpl : public LayerImpl {
 public:
  EmbeddingImpl(int64_t input_dim, int64_t output_dim, const EmbeddingOptions& opt, const std::string& name)
      : LayerImpl("embedding", name), input_dim_(input_dim), output_dim_(output_dim), opt_(opt) {
    if (input_dim <= 0 || output_dim <= 0) {
      throw std::invalid_argument("Embedding: input_dim and output_dim must be positive, got " +
                                  std::to_string(input_dim) + " and " + std::to_string(output_dim));
    }
  }

  // Indices are not data to cast to the compute dtype.
  bool autocast_inputs() const override { return false; }

  void build(const std::vector<Shape>&) override {
    embeddings_ = add_weight("embeddings", {input_dim_, output_dim_}, opt_.embeddings_initializer);
  }

  Tensor call(const std::vector<Tensor>& in, bool) override {
    Tensor ids = in[0];
    if (is_floating(ids.dtype())) ids = cast(ids, DType::s32);
    // Keras gathers from the variable and casts the rows, so a mixed-precision model gathers
    // f32 rows and casts only those.
    Tensor rows = gather(embeddings_.value(), ids, 0);
    return cast(rows, policy().compute_dtype);
  }

  Tensor compute_mask(const std::vector<Tensor>& in, const std::vector<Tensor>&) const override {
    if (!opt_.mask_zero) return Tensor();
    Tensor ids = is_floating(in[0].dtype()) ? cast(in[0], DType::s32) : in[0];
    // Exact: a nonzero integer never casts to 0.f.
    return 1.f - equal(cast(ids, DType::f32), Tensor::scalar(0.f));
  }

  std::string class_name() const override { return "Embedding"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("input_dim", input_dim_);
    c.set("output_dim", output_dim_);
    c.set("embeddings_initializer", opt_.embeddings_initializer);
    c.set("mask_zero", opt_.mask_zero);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() != 1) return std::nullopt;
    Shape out = in[0];
    out.push_back(output_dim_);
    return out;
  }
  double compute_cost(const std::vector<Shape>& in) const override {
    if (in.size() != 1) return LayerImpl::compute_cost(in);
    double n = static_cast<double>(output_dim_);
    for (int64_t d : in[0]) n *= static_cast<double>(d);
    return n;
  }

 private:
  int64_t input_dim_, output_dim_;
  EmbeddingOptions opt_;
  Variable embeddings_;
};

Layer from_config(const Config& config) {
  ConfigReader r(config, "Embedding config");
  BaseLayerConfig base = read_base_config(r);
  int64_t input_dim = r.integer("input_dim", 1, kMaxConfigSize);
  int64_t output_dim = r.integer("output_dim", 1, kMaxConfigSize);
  EmbeddingOptions opt;
  opt.embeddings_initializer = read_initializer(r, "embeddings_initializer", opt.embeddings_initializer);
  opt.mask_zero = r.boolean("mask_zero", opt.mask_zero);
  r.finish();
  return with_base_config(Embedding(input_dim, output_dim, opt, base.name), base);
}

const bool registered = register_builtin_layer("Embedding", from_config);

}  // namespace

Layer Embedding(int64_t input_dim, int64_t output_dim, const EmbeddingOptions& options, const std::string& name) {
  return Layer(std::make_shared<EmbeddingImpl>(input_dim, output_dim, options, name));
}

}  // namespace kiln::nn
