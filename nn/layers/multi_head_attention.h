#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nn/layer.h"

namespace kiln::nn {

struct MultiHeadAttentionOptions {
  std::optional<int64_t> value_dim;  // unset: key_dim
  float dropout = 0.f;               // on the attention weights, in training
  bool use_bias = true;
  std::vector<int64_t> output_shape;  // empty: the query's last dimension
  // Keras's attention_axes; empty is None: every axis between the batch and the features.
  // Given axes must be exactly those (attention over a subset batches the others, which
  // Kiln does not implement; the error says so).
  std::vector<int> attention_axes;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
  uint64_t seed = 0;  // the dropout's; 0: drawn from the global seed
  // Keras passes use_causal_mask to each call. A Kiln layer call carries tensors only, so a
  // functional or Sequential graph takes it from here (saved in the config beside Keras's
  // keys); multi_head_attention() below takes it per call, as Keras does.
  bool use_causal_mask = false;
};

// keras.layers.MultiHeadAttention with Keras 3's weight layout: query/key/value kernels
// [D, num_heads, key_dim (value_dim for value)] and biases [num_heads, key_dim], output
// kernel [num_heads, value_dim, *output_shape] and bias [*output_shape], named
// "<layer>/query/kernel", ... as Keras's variable paths.
// Called on [query, value], [query, value, key] or [query, value, key, attention_mask]
// (attention_mask [B, T, S], 1 = attend, as Keras's boolean mask). Masks carried by the
// inputs (nn/mask.h) combine with attention_mask as Keras's _compute_attention_mask does;
// the output carries the query's mask. The attention itself is scaled_dot_product_attention.
Layer MultiHeadAttention(int64_t num_heads, int64_t key_dim, const MultiHeadAttentionOptions& options = {},
                         const std::string& name = "");

// Keras's call(query, value, key, attention_mask, return_attention_scores, training,
// use_causal_mask) for eager code; the *_mask fields are the inputs' Keras masks.
struct MultiHeadAttentionCall {
  Tensor query, value, key, attention_mask;
  Tensor query_mask, value_mask, key_mask;
  bool use_causal_mask = false;
  bool return_attention_scores = false;
  bool training = false;
};
struct MultiHeadAttentionResult {
  Tensor output;
  Tensor scores;  // [B, num_heads, T, S] when asked for
};
MultiHeadAttentionResult multi_head_attention(const Layer& layer, const MultiHeadAttentionCall& call);

}  // namespace kiln::nn
