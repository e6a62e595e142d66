#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "tensor/tensor.h"

namespace kiln {

// How scaled_dot_product_attention reads its mask.
//   additive: added to the scaled scores (a float bias; -inf excludes a key);
//   boolean:  a key is attended where the mask is > 0.5 (1/0 floats, as Kiln's comparisons
//             give, or u8), as Keras's boolean masks.
enum class AttentionMask { additive, boolean };
const char* attention_mask_name(AttentionMask m);
AttentionMask attention_mask_from_name(const std::string& name);

struct AttentionOptions {
  std::optional<double> scale;  // unset: 1 / sqrt(D), D the last dimension of q
  bool causal = false;          // query i sees keys j <= i (Keras's lower-triangular mask)
  AttentionMask mask_kind = AttentionMask::boolean;
  // Dropout on the attention weights; applied only when > 0 (a layer passes its rate in
  // training and 0 otherwise). The masks come from dropout_seed alone, so a call repeats.
  float dropout_rate = 0.f;
  uint64_t dropout_seed = 0;
};

// softmax(scale * q @ k^T (+ mask), over the keys) @ v, as one op.
//   q: [..., Tq, D], k: [..., Tk, D], v: [..., Tk, Dv] with the same leading dimensions
//   (Keras's [B, H, T, D] layout, or any rank >= 2); f32 or bf16, all three alike.
//   mask: undefined, or broadcastable to [..., Tq, Tk] (see AttentionMask).
// A masked key gets weight exactly 0, so a query that every key is masked from (by the mask or
// the causal flag) gets all-zero weights and a zero output, never NaN, and passes no
// gradient to q or k. That is Keras's Softmax layer with a mask (it zeroes masked positions
// "in case the entire axis is masked"), which MultiHeadAttention uses when it returns scores
// or has dropout; Keras 3.15.1's other path (ops.dot_product_attention on jax) gives such a
// query uniform weights instead (tests/data/multi_head_attention holds both outputs).
// The scores and the softmax run in f32 for bf16 inputs. The backward keeps the attention
// weights (in the inputs' dtype), the dropout's keep mask (u8) when dropout ran, and the
// inputs; not the scores. An additive float mask gets a gradient; a boolean one does not.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask = Tensor(),
                                    const AttentionOptions& options = {});

}  // namespace kiln
