#pragma once
#include <functional>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <utility>
#include <vector>

#include "tensor/scoped_override.h"
#include "tensor/tensor.h"

namespace kiln::rnn_detail {

class ComposedLstm;

// The cells of oneDNN's RNN primitives that Keras's recurrent layers are:
//   lstm:       lstm_forward/backward, gates i, f, c~, o (Keras's order);
//   gru:        lbr_gru_forward/backward, gates u (Keras's z), r, o (Keras's h), Keras's
//               GRU(reset_after=True);
//   simple_rnn: vanilla_rnn_forward/backward with tanh.
enum class RnnCell { lstm, gru, simple_rnn };

int gate_count(RnnCell cell);       // 4, 3, 1
int bias_gate_count(RnnCell cell);  // 4, 4 (linear-before-reset's extra bias), 1
bool has_cell_state(RnnCell cell);  // LSTM's c

// Keras's f32 bias (contiguous) as oneDNN's [bias gates, U]: GRU's input and recurrent biases
// of z and r add up and its recurrent h bias stays apart (linear-before-reset); the other
// cells' bytes are already that layout (a view).
Tensor onednn_bias(RnnCell cell, const Tensor& keras_bias, int64_t u);
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

// A pass's rows run as contiguous chunks, one per OpenMP thread, each chunk's primitive
// single-threaded and all of them at once inside one parallel region: oneDNN 2.6 splits one
// primitive's small per-step GEMMs over the threads and waits at a barrier every step, which
// scaled badly at 2 threads (about half the FMA peak where 1 thread reaches 63%). Rule: one
// chunk per thread, at least a row each; one chunk with 1 thread or inside another parallel
// region. benchmarks/rnn_split_benchmark.cc measured the split faster at every batch from 2
// to 256, f32 and bf16, training and inference, at 2 threads.
int row_chunks(int64_t rows);
// The rows [begin, end) of each of row_chunks(rows) chunks: equal, the first ones a row
// longer where they do not divide.
std::vector<std::pair<int64_t, int64_t>> row_chunk_bounds(int64_t rows);
// Rows [begin, end) of a contiguous batch-major tensor, without a copy.
Tensor chunk_rows(const Tensor& t, int64_t begin, int64_t end);
// body(k) for each of `chunks` chunks: inline for one; otherwise all at once, one chunk per
// OpenMP thread, so each chunk's oneDNN primitives run single-threaded (oneDNN with OpenMP runs
// a primitive on the calling thread alone inside an active parallel region). A chunk's
// exception is rethrown after the region. The profiler counts the whole pass as one RNN
// primitive, whichever path (primitive or composed LSTM) ran it.
void run_row_chunks(int chunks, const std::function<void(int)>& body);
// Tests and benchmarks: row_chunks answers `chunks` (capped at the rows) on this thread while
// this lives; 0 restores the rule.
class ForceRowChunks {
 public:
  explicit ForceRowChunks(int chunks);

 private:
  ScopedOverride<int> override_;
};

// One chunk of a pass: rows [begin, end) and what its backward needs, one of
//   - the primitive ran: its training workspace and the weights as its forward primitive read
//     them (chunks whose primitives want one layout share one copy);
//   - an LSTM training pass ran composed (lstm_composed_pass.h): `composed`, which keeps
//     every step's activations and states.
struct RnnChunk {
  int64_t begin = 0, end = 0;
  Tensor workspace;
  dnnl::memory layer_read, iter_read;
  std::shared_ptr<ComposedLstm> composed;
};

// LSTM training passes run composed (lstm_composed_pass.h: oneDNN matmuls and Kiln's gate
// kernels, measured faster than oneDNN 2.6's LSTM primitives); LSTM inference and GRU and
// SimpleRNN always run oneDNN's RNN primitives.
// One left-to-right pass over x [n, t, I] (f32 or bf16, contiguous, t >= 1) from h0 (x's
// dtype) and, for LSTM, c0 (f32) [n, U], contiguous: y [n, t, U] and the final h in x's
// dtype, the final c in f32 and, for training, each row chunk's workspace and weights as its
// forward primitive read them (the backward reuses them when it wants the same layout).
struct RnnPass {
  Tensor y, h, c;
  std::vector<RnnChunk> chunks;
  std::vector<Tensor> weights_kept;  // reordered weights the chunks' memories point into
};
// Which code runs a pass: inference at a small batch, small_batch_rnn_forward
// (rnn_small_batch.h); LSTM training, the composed LSTM (lstm_composed_pass.h); everything
// else, and onednn_rnn_forward always, oneDNN's primitive.
RnnPass rnn_forward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                    bool training);
RnnPass onednn_rnn_forward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                           bool training);

// The backward of one rnn_forward(training=true) pass, chunk by chunk as the forward ran:
// dy [n, t, U] (undefined: all zero, which the composed LSTM then never reads), dh and dc
// [n, U], all f32 and contiguous (dc undefined but for LSTM). Each
// chunk adds its weight gradients into a buffer of its own, summed in chunk order afterwards,
// so a split result is deterministic (and differs from the unsplit one by rounding only).
// Returns dx (undefined when !want_dx and the pass ran composed: the primitives compute it
// anyway), dh0, dc0 (f32) and adds the weights' gradients into *dw (shaped as RnnWeights,
// f32, contiguous).
struct RnnInputGrads {
  Tensor dx, dh0, dc0;
};
RnnInputGrads rnn_backward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                           const RnnPass& pass, const Tensor& dy, const Tensor& dh, const Tensor& dc,
                           RnnWeights* dw, bool want_dx = true);

}  // namespace kiln::rnn_detail
