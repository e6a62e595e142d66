#pragma once
#include "tensor/ops/rnn_primitive.h"

namespace kiln::rnn_detail {

// A forward-inference pass of LSTM, linear-before-reset GRU or tanh SimpleRNN for a few rows,
// without oneDNN's RNN primitive: at batch 1 that primitive spends most of a call reordering
// the weights it is given and in per-step overhead, while the whole pass here is one matrix
// product for every step's input projection and, per step, h @ recurrent_kernel straight from
// the plain [U, G*U] weights (they stay in L2 across steps) fused with the gates.
// Arguments and results as rnn_forward(training=false). f32 arithmetic: bf16 x, weights and
// h0 are read as f32 and y and h come back in bf16 (oneDNN's bf16 RNN also rounds h to bf16
// between steps; this does not, so it is the more accurate of the two).
// threads: how many to split the units over (0: small_batch_rnn_threads' choice).
RnnPass small_batch_rnn_forward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0,
                                const Tensor& c0, int threads = 0);

// Weights as the kernel reads them, f32 and contiguous: the inference plan prepares them once
// for constant weights (layer [I, G*U], iter [U, G*U], bias oneDNN's [bias gates, U]).
struct SmallBatchRnnWeights {
  RnnCell cell = RnnCell::lstm;
  Tensor layer, iter, bias;
};
SmallBatchRnnWeights prepare_small_batch_rnn(RnnCell cell, const RnnWeights& w);

// The pass on caller-owned f32 buffers: x [n, t, I], h0 and c0 [n, U] (null: zeros; c0 LSTM's
// only) into y [n, t, U], h [n, U] and, for LSTM, c [n, U].
void small_batch_rnn_run(const SmallBatchRnnWeights& w, const float* x, int64_t n, int64_t t, const float* h0,
                         const float* c0, float* y, float* h, float* c, int threads = 0);

// Whether small_batch_rnn_forward beats oneDNN's primitive for n rows of U units (measured
// side by side by benchmarks/rnn_small_batch.cc).
bool small_batch_rnn_wins(int64_t n, int64_t u);

// How many threads small_batch_rnn_forward splits U's units over (a barrier per step): 1
// below the size where the split measured faster, else up to omp_get_max_threads().
int small_batch_rnn_threads(int64_t n, int64_t u);

}  // namespace kiln::rnn_detail
