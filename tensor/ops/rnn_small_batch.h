#pragma once
#include "tensor/ops/rnn_primitive.h"

namespace kiln::rnn_detail {

// How small_batch_rnn_run shares a pass among threads:
//   rows:  each thread runs every step of its own rows (no thread waits for another);
//   units: each thread runs its own blocks of 16 units of every row, meeting at a barrier
//          after each step (each step reads the whole previous h);
//   choose: small_batch_rnn_threads' choice.
enum class SmallBatchSplit { choose, rows, units };

// A forward-inference pass of LSTM, linear-before-reset GRU or tanh SimpleRNN without oneDNN's
// RNN primitive: per step and per block of 16 units, bias + x_s @ kernel + h @ recurrent_kernel
// from one contiguous panel of weights (which stays in L1 while every row's product uses it),
// 4 rows (SimpleRNN 8) at a time in registers, then the cell on the sums still in registers.
// Arguments and results as rnn_forward(training=false). f32 arithmetic: bf16 x, weights and
// h0 are read as f32 and y and h come back in bf16 (oneDNN's bf16 RNN also rounds h to bf16
// between steps; this does not, so it is the more accurate of the two).
// threads: how many (0: small_batch_rnn_threads' choice); split as above.
RnnPass small_batch_rnn_forward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0,
                                const Tensor& c0, int threads = 0, SmallBatchSplit split = SmallBatchSplit::choose);

// Weights as the kernel reads them, prepared once (the inference plan does so for constant
// weights): for each block b of 16 units, a panel of I + U rows (x's, then h's), each row the
// block's 16 columns of each gate the cell multiplies (LSTM i, f, c~, o; GRU z, r, h; SimpleRNN
// its one), units past U zero; bias [blocks, bias gates, 16] the same way.
struct SmallBatchRnnWeights {
  RnnCell cell = RnnCell::lstm;
  int64_t in = 0, u = 0;
  Tensor panels, bias;
};
SmallBatchRnnWeights prepare_small_batch_rnn(RnnCell cell, const RnnWeights& w);

// The pass on caller-owned f32 buffers: x [n, t, I], h0 and c0 [n, U] (null: zeros; c0 LSTM's
// only) into y [n, t, U], h [n, U] and, for LSTM, c [n, U] (each null: not written).
void small_batch_rnn_run(const SmallBatchRnnWeights& w, const float* x, int64_t n, int64_t t, const float* h0,
                         const float* c0, float* y, float* h, float* c, int threads = 0,
                         SmallBatchSplit split = SmallBatchSplit::choose);

// Whether the kernel, with small_batch_rnn_threads' choice, beats rnn_forward's oneDNN
// primitives (rows split over the same threads) for n rows of U units of `cell`, both on
// weights prepared once (the inference plan) and preparing them each call (the ops): measured
// side by side by benchmarks/rnn_small_batch.cc.
bool small_batch_rnn_wins(RnnCell cell, int64_t n, int64_t u);

// How many threads a pass of n rows of I features and U units runs on and how it splits them:
// one inside a parallel region, else up to omp_get_max_threads() (see the measurements beside
// it).
struct SmallBatchRnnThreads {
  int threads = 1;
  SmallBatchSplit split = SmallBatchSplit::rows;
};
SmallBatchRnnThreads small_batch_rnn_threads(RnnCell cell, int64_t n, int64_t in, int64_t u);

}  // namespace kiln::rnn_detail
