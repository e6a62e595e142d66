#pragma once
// rnn_forward(training) and rnn_backward for the LSTM cell on the composed LSTM
// (lstm_composed.h) instead of oneDNN's RNN primitives, split into row chunks as the
// primitives' passes are (rnn_primitive.h's row_chunks): each chunk's ComposedLstm runs
// single-threaded, all chunks at once, or, for one chunk, its GEMMs and gate kernels on the
// whole OpenMP team. Each chunk's ComposedLstm is the pass's saved state (RnnChunk::composed).
#include "tensor/ops/rnn_primitive.h"
#include "tensor/scoped_override.h"

namespace kiln::rnn_detail {

// Whether LSTM training passes run composed: always, unless a test or benchmark forces a path
// (ForceLstmTrainingPath). At 1 thread the composed pass beat the primitives at every batch
// (benchmarks/results/rnn_composition.md); at 2 threads, split one chunk per thread, too:
// benchmarks/rnn_split_benchmark.cc's last table (best of 5, load average 3.4-3.8) read
// primitive / composed 1.33x, 1.06x, 1.13x in f32 and 2.08x, 1.37x, 1.20x in bf16 at batch 8,
// 32, 128 (and 2.8x at batch 2), so no batch or thread count picks the primitives.
bool composed_lstm_training();

enum class LstmTrainingPath { automatic, composed, primitive };
// Tests and benchmarks: LSTM training passes on this thread take `path` while this lives.
class ForceLstmTrainingPath {
 public:
  explicit ForceLstmTrainingPath(LstmTrainingPath path);

 private:
  ScopedOverride<LstmTrainingPath> override_;
};

// As rnn_forward(RnnCell::lstm, ..., training=true) and rnn_backward for such a pass; dx is
// computed only when want_dx (else undefined).
RnnPass composed_lstm_forward(const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0);
RnnInputGrads composed_lstm_backward(const Tensor& x, const RnnPass& pass, const Tensor& dy,
                                     const Tensor& dh, const Tensor& dc, RnnWeights* dw, bool want_dx);

}  // namespace kiln::rnn_detail
