#include "nn/applications/char_transformer_lm.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "nn/layers/layers.h"

namespace kiln::nn::applications {
namespace {

void check_options(const CharTransformerLmOptions& o) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("char_transformer_lm: " + what); };
  if (o.vocab <= 0 || o.context <= 0 || o.dim <= 0 || o.heads <= 0 || o.blocks < 0 || o.mlp_ratio <= 0) {
    fail("vocab, context, dim, heads and mlp_ratio must be positive and blocks at least 0, got vocab " +
         std::to_string(o.vocab) + ", context " + std::to_string(o.context) + ", dim " + std::to_string(o.dim) +
         ", heads " + std::to_string(o.heads) + ", blocks " + std::to_string(o.blocks) + ", mlp_ratio " +
         std::to_string(o.mlp_ratio));
  }
  if (o.dim % o.heads != 0) fail("heads " + std::to_string(o.heads) + " does not divide dim " + std::to_string(o.dim));
}

}  // namespace

Tensor lm_positions(int64_t batch, int64_t context) {
  std::vector<int32_t> p(batch * context);
  for (int64_t i = 0; i < batch * context; ++i) p[i] = static_cast<int32_t>(i % context);
  return Tensor::from_int32(p, {batch, context});
}

std::shared_ptr<Model> char_transformer_lm(const CharTransformerLmOptions& o) {
  check_options(o);
  SymbolicTensor tokens = Input({o.context}, DType::s32);
  SymbolicTensor where = Input({o.context}, DType::s32);
  SymbolicTensor x = Add("embed")({Embedding(o.vocab, o.dim, {}, "token_embedding")(tokens),
                                   Embedding(o.context, o.dim, {}, "position_embedding")(where)});
  for (int64_t b = 0; b < o.blocks; ++b) {
    const std::string p = "block" + std::to_string(b) + "_";
    SymbolicTensor h = LayerNormalization({}, p + "attention_norm")(x);
    h = MultiHeadAttention(o.heads, o.dim / o.heads, {.use_causal_mask = true}, p + "attention")({h, h});
    x = Add(p + "attention_residual")({x, h});
    h = LayerNormalization({}, p + "mlp_norm")(x);
    h = Dense(o.mlp_ratio * o.dim, "gelu", {}, p + "mlp_up")(h);
    h = Dense(o.dim, "", {}, p + "mlp_down")(h);
    x = Add(p + "mlp_residual")({x, h});
  }
  x = LayerNormalization({}, "final_norm")(x);
  SymbolicTensor logits = Dense(o.vocab, "", {}, "logits")(x);
  auto model = std::make_shared<Model>(std::vector<SymbolicTensor>{tokens, where}, std::vector<SymbolicTensor>{logits},
                                       "char_lm");
  model->call({Tensor::zeros({1, o.context}, DType::s32), lm_positions(1, o.context)}, false);  // builds the weights
  return model;
}

}  // namespace kiln::nn::applications
