#include "tensor/ops/lstm_composed_pass.h"

#include <omp.h>

#include <stdexcept>

#include "tensor/ops/lstm_composed.h"

namespace kiln::rnn_detail {
namespace {

thread_local LstmTrainingPath forced_path = LstmTrainingPath::automatic;

void add_into(const Tensor& into, const Tensor& from) {
  float* to = into.data<float>();
  const float* f = from.data<float>();
  for (int64_t k = 0, n = into.numel(); k < n; ++k) to[k] += f[k];
}

Tensor flat(const Tensor& t) { return t.alias({t.numel()}, {1}, t.offset()); }

}  // namespace

ForceLstmTrainingPath::ForceLstmTrainingPath(LstmTrainingPath path) : override_(forced_path, path) {}

bool composed_lstm_training() {
  return forced_path != LstmTrainingPath::primitive;
}

RnnPass composed_lstm_forward(const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0) {
  const int64_t n = x.shape()[0], t = x.shape()[1], i = x.shape()[2], u = w.iter.shape()[0];
  const DType data = x.dtype();
  RnnPass out;
  const auto bounds = row_chunk_bounds(n);
  const int chunks = static_cast<int>(bounds.size());
  // One chunk's sequence output is the pass's (the backward does not read it), not a copy.
  if (chunks > 1) out.y = Tensor::empty({n, t, u}, data);
  out.h = Tensor::empty({n, u}, data);
  out.c = Tensor::empty({n, u});
  const int gate_threads = chunks == 1 && !omp_in_parallel() ? omp_get_max_threads() : 1;
  const Tensor bias = flat(w.bias);
  for (auto [begin, end] : bounds) {
    RnnChunk chunk;
    chunk.begin = begin, chunk.end = end;
    chunk.composed = std::make_shared<ComposedLstm>(LstmShape{end - begin, t, i, u, data}, w.layer, w.iter, bias,
                                                    gate_threads);
    out.chunks.push_back(std::move(chunk));
  }
  run_row_chunks(chunks, [&](int k) {
    const RnnChunk& chunk = out.chunks[k];
    ComposedLstm& lstm = *chunk.composed;
    lstm.forward(chunk_rows(x, chunk.begin, chunk.end), chunk_rows(h0, chunk.begin, chunk.end),
                 chunk_rows(c0, chunk.begin, chunk.end));
    if (chunks > 1) chunk_rows(out.y, chunk.begin, chunk.end).copy_from(lstm.y());
    chunk_rows(out.h, chunk.begin, chunk.end).copy_from(lstm.h());
    chunk_rows(out.c, chunk.begin, chunk.end).copy_from(lstm.c());
  });
  if (chunks == 1) out.y = out.chunks.front().composed->y();
  return out;
}

RnnInputGrads composed_lstm_backward(const Tensor& x, const RnnPass& pass, const Tensor& dy,
                                     const Tensor& dh, const Tensor& dc, RnnWeights* dw, bool want_dx) {
  const int64_t n = x.shape()[0], u = pass.h.shape()[1];
  RnnInputGrads out;
  if (want_dx) out.dx = Tensor::empty(x.shape());
  out.dh0 = Tensor::empty({n, u});
  out.dc0 = Tensor::empty({n, u});
  const int chunks = static_cast<int>(pass.chunks.size());
  for (const RnnChunk& chunk : pass.chunks) {
    if (!chunk.composed) throw std::logic_error("lstm: backward of a pass the composed LSTM did not run");
  }
  run_row_chunks(chunks, [&](int k) {
    const RnnChunk& chunk = pass.chunks[k];
    ComposedLstm& lstm = *chunk.composed;
    lstm.backward(chunk_rows(dy, chunk.begin, chunk.end), chunk_rows(dh, chunk.begin, chunk.end),
                  chunk_rows(dc, chunk.begin, chunk.end));
    chunk_rows(out.dh0, chunk.begin, chunk.end).copy_from(lstm.dh0());
    chunk_rows(out.dc0, chunk.begin, chunk.end).copy_from(lstm.dc0());
    if (want_dx) {
      lstm.input_grad();
      chunk_rows(out.dx, chunk.begin, chunk.end).copy_from(lstm.dx());
    }
  });
  // In chunk order, so a split result is the same every run.
  for (const RnnChunk& chunk : pass.chunks) {
    add_into(dw->layer, chunk.composed->dkernel());
    add_into(dw->iter, chunk.composed->drecurrent());
    add_into(dw->bias, chunk.composed->dbias());
  }
  return out;
}

}  // namespace kiln::rnn_detail
