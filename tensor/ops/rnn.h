#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace kiln {

// Keras's recurrent loop options (keras.layers.RNN's go_backwards and zero_output_for_mask).
struct RnnOptions {
  // Reads the sequence last step first; the output sequence is in reading order (Keras's:
  // output step k is the state after reading input step T-1-k).
  bool go_backwards = false;
  // A masked step outputs zeros rather than the state carried through it.
  bool zero_output_for_mask = false;
};

// Recurrent layers over a whole sequence, with Keras's weight layouts, so a Keras layer's
// weights go in as they are. They run on oneDNN's RNN primitives, except LSTM's training
// passes (forward and backward when gradients are recorded), which run an LSTM composed of
// oneDNN matmuls and Kiln's gate kernels (tensor/ops/lstm_composed.h), measured 1.2-1.5x
// faster than oneDNN 2.6's LSTM primitives; GRU and SimpleRNN always run the primitives.
//   x: [B, T, I], f32 or bf16; kernel [I, G*U], recurrent_kernel [U, G*U] with Keras's gate
//   order (LSTM i, f, c, o; GRU z, r, h); h0 (and LSTM's c0): [B, U], the initial states,
//   or undefined for zeros (LSTM: both or neither).
//   mask: undefined, or f32 [B, T] of 1 (a real step) and 0 (padding), Kiln's mask values.
//     A masked step carries the states through unchanged and outputs the carried h, or zeros
//     with zero_output_for_mask: Keras's backend.rnn. oneDNN has no masks, so each row's
//     mask must be one run of ones in reading order (padding after the sequence, before it,
//     or both; none at all: an all-zero row keeps its initial state); rows are run in groups
//     of equal runs. A mask with a hole in a row is refused, naming the row.
// As a graph node: inputs x, kernel, recurrent_kernel, bias, then the initial states when the
// attribute initial_state is 1, then the mask when there is one.
// Returns {sequence [B, T, U], final h [B, U]} (LSTM: and final c [B, U]), in x's dtype.
// x's dtype picks the arithmetic: f32 x runs oneDNN's f32 RNN (bf16 weights and states are
// cast up); bf16 x runs oneDNN 2.6's bf16 RNN where the CPU has avx512_core_bf16 (weights
// and h states cast to bf16; the bias, LSTM's c and every gradient stay f32, as oneDNN takes
// them) and, on other CPUs, the f32 RNN on the bf16 values. Gradients flow to x, the
// weights, the bias and the initial states (not twice); the mask gets none. Primitives are
// cached per (cell, dtype, rows, steps) in an LRU of their own (rnn_primitive_cache.h:
// kRnnPrimitiveCacheCapacity). Inference (nothing recorded) at the batches where it measured
// faster runs Kiln's own kernel instead of the primitive (rnn_small_batch.h).
//
// lstm: bias [4U]. Keras's LSTM (activation tanh, recurrent_activation sigmoid).
std::vector<Tensor> lstm(const Tensor& x, const Tensor& kernel, const Tensor& recurrent_kernel, const Tensor& bias,
                         const Tensor& h0 = Tensor(), const Tensor& c0 = Tensor(), const Tensor& mask = Tensor(),
                         const RnnOptions& options = {});
// gru: bias [2, 3U] (input bias, recurrent bias): Keras's GRU(reset_after=True), oneDNN's
// linear-before-reset GRU: h = z * h_prev + (1 - z) * tanh(x W_h + b_h + r * (h_prev U_h + b'_h)).
std::vector<Tensor> gru(const Tensor& x, const Tensor& kernel, const Tensor& recurrent_kernel, const Tensor& bias,
                        const Tensor& h0 = Tensor(), const Tensor& mask = Tensor(), const RnnOptions& options = {});
// simple_rnn: bias [U]; h = tanh(x W + h_prev U + b), Keras's SimpleRNN.
std::vector<Tensor> simple_rnn(const Tensor& x, const Tensor& kernel, const Tensor& recurrent_kernel,
                               const Tensor& bias, const Tensor& h0 = Tensor(), const Tensor& mask = Tensor(),
                               const RnnOptions& options = {});

}  // namespace kiln
