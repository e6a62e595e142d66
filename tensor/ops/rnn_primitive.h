#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include "tensor/tensor.h"

namespace kiln::rnn_detail {

// The cells of oneDNN's RNN primitives that Keras's recurrent layers are:
//   lstm:       lstm_forward/backward, gates i, f, c~, o (Keras's order);
//   gru:        lbr_gru_forward/backward, gates u (Keras's z), r, o (Keras's h), Keras's
//               GRU(reset_after=True);
//   simple_rnn: vanilla_rnn_forward/backward with tanh.
enum class RnnCell { lstm, gru, simple_rnn };

int gate_count(RnnCell cell);       // 4, 3, 1
int bias_gate_count(RnnCell cell);  // 4, 4 (linear-before-reset's extra bias), 1
bool has_cell_state(RnnCell cell);  // LSTM's c
const char* cell_name(RnnCell cell);

// The arithmetic a pass runs in, x's dtype: f32, or bf16 (oneDNN 2.6's bf16 RNN: x, the h
// states, the weights and the outputs bf16; LSTM's c, the bias and every gradient f32). bf16
// runs natively only where the CPU has avx512_core_bf16 (native_bf16_rnn()); elsewhere the
// caller runs bf16 data in f32.
bool native_bf16_rnn();

// Weights as oneDNN reads them, contiguous: layer [I, G * U] and iter [U, G * U] in the
// pass's dtype (Keras's kernel and recurrent_kernel bytes are oneDNN's ldigo), bias
// [bias gates, U] f32.
struct RnnWeights {
  Tensor layer, iter, bias;
};

// One left-to-right pass over x [n, t, I] (f32 or bf16, contiguous, t >= 1) from h0 (x's
// dtype) and, for LSTM, c0 (f32) [n, U]: y [n, t, U] and the final h in x's dtype, the final
// c in f32 and, for training, oneDNN's workspace and the weights in the layout the forward
// primitive read them (the backward reuses them when it wants the same layout).
struct RnnPass {
  Tensor y, h, c, workspace;
  Tensor layer_kept, iter_kept;  // reordered weights (undefined: the plain ones were read)
  dnnl::memory layer_read, iter_read;
};
// Inference at a small batch runs small_batch_rnn_forward (rnn_small_batch.h) instead of
// oneDNN's primitive; onednn_rnn_forward always runs the primitive.
RnnPass rnn_forward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                    bool training);
RnnPass onednn_rnn_forward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                           bool training);

// The backward of one rnn_forward(training=true) pass: dy [n, t, U], dh and dc [n, U], all f32
// (dc undefined but for LSTM). Returns dx, dh0, dc0 (f32) and adds the weights' gradients
// into *dw (shaped as RnnWeights, f32).
struct RnnInputGrads {
  Tensor dx, dh0, dc0;
};
RnnInputGrads rnn_backward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                           const RnnPass& pass, const Tensor& dy, const Tensor& dh, const Tensor& dc,
                           RnnWeights* dw);

}  // namespace kiln::rnn_detail
