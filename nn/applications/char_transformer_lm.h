#pragma once
// A GPT-style causal transformer language model over token ids, in Keras layers: the model of
// examples/char_lm.cc and of the `lm` workload of //benchmarks:compare (whose PyTorch twin is
// examples/char_lm_torch_twin.py). Token Embedding plus a learned position embedding (an
// Embedding over the positions 0..context-1, the second input), pre-norm blocks
// x += MultiHeadAttention(LN(x), use_causal_mask), x += Dense(Dense(LN(x), gelu)), a final
// LayerNormalization and a Dense to the vocabulary (logits).
#include <cstdint>
#include <memory>

#include "nn/model.h"
#include "tensor/tensor.h"

namespace kiln::nn::applications {

struct CharTransformerLmOptions {
  int64_t vocab = 0;    // distinct tokens (required)
  int64_t context = 64; // positions per window
  int64_t dim = 128;    // token width
  int64_t heads = 4;    // must divide dim (key_dim = dim / heads)
  int64_t blocks = 4;   // pre-norm decoder blocks
  int64_t mlp_ratio = 4;  // each block's MLP hidden width is mlp_ratio * dim
};

// Inputs: tokens and positions, both [batch, context] s32; output [batch, context, vocab] logits.
// The layers are named (token_embedding, block<i>_attention, ..., logits), so saved weights
// keep their names. The weights are built. Throws std::invalid_argument naming the option when
// the sizes do not fit together.
std::shared_ptr<Model> char_transformer_lm(const CharTransformerLmOptions& options);

// [batch, context] s32 with every row 0, 1, ..., context-1: the model's second input.
Tensor lm_positions(int64_t batch, int64_t context);

}  // namespace kiln::nn::applications
