#pragma once
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

// Keras's arguments of LSTM, GRU and SimpleRNN (keras.layers.*), with Keras's defaults.
struct RecurrentOptions {
  std::string activation = "tanh";               // tanh only (oneDNN's cells)
  std::string recurrent_activation = "sigmoid";  // LSTM, GRU; sigmoid only
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string recurrent_initializer = "orthogonal";
  std::string bias_initializer = "zeros";
  bool unit_forget_bias = true;  // LSTM: the forget gate's bias starts at 1
  // Keras's input dropout: in training, one mask per sequence ([batch, features], kept with
  // probability 1 - dropout and scaled by 1 / (1 - dropout)) multiplies every timestep.
  float dropout = 0.f;
  float recurrent_dropout = 0.f;  // 0 only: oneDNN's fused cells cannot mask h between steps
  uint64_t seed = 0;              // dropout's seed; 0 draws one from the global seed
  bool return_sequences = false;
  // The final states as extra outputs: [output, state_h, state_c] (LSTM), [output, state]
  // (GRU, SimpleRNN); call it with Layer::outputs().
  bool return_state = false;
  bool go_backwards = false;
  bool stateful = false;  // false only
  bool unroll = false;    // accepted; oneDNN runs the loop either way
  bool reset_after = true;  // GRU: true only (oneDNN's linear-before-reset GRU)
  // keras.layers.RNN's zero_output_for_mask: masked steps output zeros (Bidirectional sets it
  // when it returns sequences); otherwise they repeat the carried state.
  bool zero_output_for_mask = false;
};

// keras.layers.LSTM / GRU / SimpleRNN over [batch, time, features] on oneDNN's RNN primitives
// (tensor/ops/rnn.h). Weights as Keras's: `kernel` [features, G*units], `recurrent_kernel`
// [units, G*units] and `bias` ([4*units] LSTM, [2, 3*units] GRU, [units] SimpleRNN), gates
// in Keras's order (i, f, c, o; z, r, h). Output: the last state [batch, units], or with
// return_sequences the whole sequence [batch, time, units]. A mask (Embedding(mask_zero),
// Masking) is consumed as Keras does, and passed on with return_sequences; each row's mask
// must be one run of real steps (padding before and/or after), which covers padded
// sequences; other masks are refused with the row named. Keras's initial_state=[h, c] are
// extra inputs after the sequence (layer.outputs({x, h, c}) or layer({x, h, c})), [batch,
// units] each. Options outside what these cells run (other activations, recurrent_dropout,
// stateful, GRU(reset_after=False)) are refused at construction, naming the option.
Layer LSTM(int64_t units, const RecurrentOptions& options = {}, const std::string& name = "");
Layer GRU(int64_t units, const RecurrentOptions& options = {}, const std::string& name = "");
Layer SimpleRNN(int64_t units, const RecurrentOptions& options = {}, const std::string& name = "");

}  // namespace kiln::nn
