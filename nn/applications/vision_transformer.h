#pragma once
// A small vision transformer (ViT, Dosovitskiy et al. 2020) for u8 images, as the Keras ViT
// example builds one: non-overlapping patches embedded by a strided Conv2D, a learned position
// embedding, pre-norm encoder blocks, global average pooling of the tokens and a Dense head.
#include <cstdint>
#include <memory>
#include <vector>

#include "nn/model.h"
#include "nn/symbolic.h"

namespace kiln::nn::applications {

struct VisionTransformerOptions {
  std::vector<int64_t> input_shape = {28, 28, 1};  // [H, W, C] u8 pixels, rescaled to [0, 1] inside
  int64_t patch_size = 4;                          // must divide H and W
  int64_t dim = 64;                                // the token width
  int64_t depth = 4;                               // encoder blocks
  int64_t num_heads = 4;                           // must divide dim (key_dim = dim / num_heads)
  int64_t mlp_dim = 128;                           // each block's MLP hidden width (gelu)
  float dropout = 0.f;                             // attention weights and after each MLP Dense
  float layer_norm_epsilon = 1e-6f;
  int64_t classes = 10;                            // logits (no softmax)
};

// One pre-norm transformer encoder block on [batch, tokens, dim]:
//   x + MHA(LN(x)), then that + Dense(dim)(Dense(mlp_dim, gelu)(LN(.))).
SymbolicTensor transformer_encoder_block(const SymbolicTensor& x, int64_t num_heads, int64_t mlp_dim, float dropout,
                                         float layer_norm_epsilon);

// [batch, H, W, C] u8 -> [batch, classes] logits. Throws std::invalid_argument naming the
// option when the sizes do not fit together.
std::shared_ptr<Model> vision_transformer(const VisionTransformerOptions& options = {});

}  // namespace kiln::nn::applications
