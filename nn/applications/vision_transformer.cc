#include "nn/applications/vision_transformer.h"

#include <stdexcept>
#include <string>

#include "nn/layers/layers.h"

namespace kiln::nn::applications {
namespace {

void check_options(const VisionTransformerOptions& o) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("vision_transformer: " + what); };
  if (o.input_shape.size() != 3) fail("input_shape must be [H, W, C], got " + shape_str(o.input_shape));
  for (int64_t v : {o.patch_size, o.dim, o.depth, o.num_heads, o.mlp_dim, o.classes}) {
    if (v <= 0) fail("patch_size, dim, depth, num_heads, mlp_dim and classes must be positive");
  }
  if (o.input_shape[0] % o.patch_size != 0 || o.input_shape[1] % o.patch_size != 0) {
    fail("patch_size " + std::to_string(o.patch_size) + " does not divide the image " + shape_str(o.input_shape));
  }
  if (o.dim % o.num_heads != 0) {
    fail("num_heads " + std::to_string(o.num_heads) + " does not divide dim " + std::to_string(o.dim));
  }
  if (!(o.dropout >= 0.f && o.dropout < 1.f)) fail("dropout must be in [0, 1), got " + std::to_string(o.dropout));
}

}  // namespace

SymbolicTensor transformer_encoder_block(const SymbolicTensor& x, int64_t num_heads, int64_t mlp_dim, float dropout,
                                         float layer_norm_epsilon) {
  const int64_t dim = x.shape().back();
  SymbolicTensor h = LayerNormalization({.epsilon = layer_norm_epsilon})(x);
  h = MultiHeadAttention(num_heads, dim / num_heads, {.dropout = dropout})({h, h});
  SymbolicTensor attended = Add()({x, h});
  h = LayerNormalization({.epsilon = layer_norm_epsilon})(attended);
  h = Dense(mlp_dim, "gelu")(h);
  if (dropout > 0) h = Dropout(dropout)(h);
  h = Dense(dim)(h);
  if (dropout > 0) h = Dropout(dropout)(h);
  return Add()({attended, h});
}

std::shared_ptr<Model> vision_transformer(const VisionTransformerOptions& o) {
  check_options(o);
  const int64_t patches = (o.input_shape[0] / o.patch_size) * (o.input_shape[1] / o.patch_size);
  SymbolicTensor images = Input(o.input_shape, DType::u8);
  SymbolicTensor x = Rescaling(1.f / 255)(images);
  // Each patch_size x patch_size patch, flattened and projected to dim: one strided convolution.
  Conv2DOptions patchify;
  patchify.strides = {o.patch_size, o.patch_size};
  x = Conv2D(o.dim, o.patch_size, "", patchify, "patch_embedding")(x);
  x = Reshape({patches, o.dim})(x);
  x = AddPositionEmbedding(patches, "glorot_uniform", "position_embedding")(x);
  for (int64_t i = 0; i < o.depth; ++i) {
    x = transformer_encoder_block(x, o.num_heads, o.mlp_dim, o.dropout, o.layer_norm_epsilon);
  }
  x = LayerNormalization({.epsilon = o.layer_norm_epsilon})(x);
  x = GlobalAveragePooling1D()(x);
  return std::make_shared<Model>(images, Dense(o.classes, "", {}, "head")(x), "vision_transformer");
}

}  // namespace kiln::nn::applications
