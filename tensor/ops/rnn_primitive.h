#pragma once
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

// Weights as oneDNN reads them, all f32 and contiguous: layer [I, G * U] and iter [U, G * U]
// (Keras's kernel and recurrent_kernel bytes are oneDNN's ldigo), bias [bias gates, U].
struct RnnWeights {
  Tensor layer, iter, bias;
};

// One left-to-right pass over x [n, t, I] (f32, contiguous, t >= 1) from h0 (and c0 for
// LSTM) [n, U]: y [n, t, U], the final h and c, and, for training, oneDNN's workspace.
struct RnnPass {
  Tensor y, h, c, workspace;
};
RnnPass rnn_forward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                    bool training);

// The backward of one rnn_forward(training=true) pass: dy [n, t, U], dh and dc [n, U] (dc
// undefined but for LSTM). Returns dx, dh0, dc0 and adds the weights' gradients into *dw
// (shaped as RnnWeights, f32).
struct RnnInputGrads {
  Tensor dx, dh0, dc0;
};
RnnInputGrads rnn_backward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                           const RnnPass& pass, const Tensor& dy, const Tensor& dh, const Tensor& dc,
                           RnnWeights* dw);

}  // namespace kiln::rnn_detail
