#include "tensor/ops/rnn_primitive.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "tensor/onednn/engine.h"
#include "tensor/onednn/isa.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/onednn/profiler.h"
#include "tensor/ops/lstm_composed_pass.h"
#include "tensor/ops/rnn_primitive_cache.h"
#include "tensor/ops/rnn_small_batch.h"

namespace kiln::rnn_detail {
namespace {

using md = dnnl::memory::desc;
using tag = dnnl::memory::format_tag;
constexpr auto kF32 = dnnl::memory::data_type::f32;
constexpr auto kLeftToRight = dnnl::rnn_direction::unidirectional_left2right;

struct Geometry {
  int64_t n, t, i, u;
  int gates, bias_gates;
  dnnl::memory::data_type data;  // x, h, weights and outputs; c, bias and gradients are f32
  md src(dnnl::memory::data_type d) const { return {{t, n, i}, d, tag::ntc}; }
  md dst(dnnl::memory::data_type d) const { return {{t, n, u}, d, tag::ntc}; }
  md state(dnnl::memory::data_type d) const { return {{1, 1, n, u}, d, tag::ldnc}; }
  md weights_layer(dnnl::memory::data_type d, tag layout) const { return {{1, 1, i, gates, u}, d, layout}; }
  md weights_iter(dnnl::memory::data_type d, tag layout) const { return {{1, 1, u, gates, u}, d, layout}; }
  md bias() const { return {{1, 1, bias_gates, u}, kF32, tag::ldgo}; }
};

Geometry geometry_of(RnnCell cell, const Tensor& x, const RnnWeights& w) {
  if (w.layer.dtype() != x.dtype() || w.iter.dtype() != x.dtype() || w.bias.dtype() != DType::f32) {
    throw std::logic_error(std::string("rnn: weights must be in x's dtype (bias f32), got ") + w.layer.describe() +
                           ", " + w.iter.describe() + ", " + w.bias.describe() + " for " + x.describe());
  }
  const int g = gate_count(cell);
  return {x.shape()[0], x.shape()[1], x.shape()[2], w.iter.shape()[0], g, bias_gate_count(cell),
          onednn::to_dnnl(x.dtype())};
}

onednn::KeyBuilder key_of(const char* op, RnnCell cell, const Geometry& g) {
  return std::move(onednn::KeyBuilder(op).add(cell_name(cell)).add(g.data == kF32 ? "f32" : "bf16").add(g.n).add(g.t)
                       .add(g.i).add(g.u));
}

// The forward primitive descriptor of a cell; weights in the layout oneDNN picks.
template <typename Fwd>
typename Fwd::primitive_desc forward_pd(RnnCell cell, const Geometry& g, dnnl::prop_kind prop) {
  const auto d = g.data;
  const md wl = g.weights_layer(d, tag::any), wi = g.weights_iter(d, tag::any);
  const md s = g.state(d), sc = g.state(kF32), none;
  if constexpr (std::is_same_v<Fwd, dnnl::lstm_forward>) {
    return {typename Fwd::desc(prop, kLeftToRight, g.src(d), s, sc, wl, wi, none, none, g.bias(), g.dst(d), s, sc),
            onednn::default_attr(), onednn::cpu_engine()};
  } else if constexpr (std::is_same_v<Fwd, dnnl::lbr_gru_forward>) {
    return {typename Fwd::desc(prop, kLeftToRight, g.src(d), s, wl, wi, g.bias(), g.dst(d), s), onednn::default_attr(),
            onednn::cpu_engine()};
  } else {
    (void)cell;
    return {typename Fwd::desc(prop, dnnl::algorithm::eltwise_tanh, kLeftToRight, g.src(d), s, wl, wi, g.bias(),
                               g.dst(d), s),
            onednn::default_attr(), onednn::cpu_engine()};
  }
}

template <typename Fwd, typename Bwd>
typename Bwd::primitive_desc backward_pd(RnnCell cell, const Geometry& g) {
  // oneDNN 2.6's bf16 backward takes every diff_* in f32 (it refuses bf16 ones).
  const auto d = g.data;
  const md wl = g.weights_layer(d, tag::any), wi = g.weights_iter(d, tag::any);
  // Weight gradients plain (ldigo), as Kiln accumulates them: with tag::any oneDNN 2.6 pads
  // their rows (512 -> 528 floats), which cost a reorder back per weight per step.
  const md dwl = g.weights_layer(kF32, tag::ldigo), dwi = g.weights_iter(kF32, tag::ldigo);
  const md s = g.state(d), f = g.state(kF32), none;
  const md src = g.src(d), dst = g.dst(d), dsrc = g.src(kF32), ddst = g.dst(kF32), b = g.bias();
  const auto prop = dnnl::prop_kind::backward;
  auto hint = forward_pd<Fwd>(cell, g, dnnl::prop_kind::forward_training);
  if constexpr (std::is_same_v<Bwd, dnnl::lstm_backward>) {
    return {typename Bwd::desc(prop, kLeftToRight, src, s, f, wl, wi, none, none, b, dst, s, f, dsrc, f, f, dwl, dwi,
                               none, none, b, ddst, f, f),
            onednn::default_attr(), onednn::cpu_engine(), hint};
  } else if constexpr (std::is_same_v<Bwd, dnnl::lbr_gru_backward>) {
    return {typename Bwd::desc(prop, kLeftToRight, src, s, wl, wi, b, dst, s, dsrc, f, dwl, dwi, b, ddst, f),
            onednn::default_attr(), onednn::cpu_engine(), hint};
  } else {
    return {typename Bwd::desc(prop, dnnl::algorithm::eltwise_tanh, kLeftToRight, src, s, wl, wi, b, dst, s, dsrc, f,
                               dwl, dwi, b, ddst, f),
            onednn::default_attr(), onednn::cpu_engine(), hint};
  }
}

// A maker of the cached pair (descriptor, primitive) from a descriptor maker.
template <typename Prim, typename MakePd>
std::function<onednn::CachedPrimitive()> made(MakePd make_pd) {
  return [make_pd] {
    auto pd = make_pd();
    return onednn::CachedPrimitive{pd, Prim(pd)};
  };
}

onednn::CachedPrimitive forward_primitive(RnnCell cell, const Geometry& g, bool training) {
  const char* op = "rnn_forward";
  const auto prop = training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  auto key = key_of(op, cell, g).add(int64_t(training));
  switch (cell) {
    case RnnCell::lstm: return rnn_cached(op, key, made<dnnl::lstm_forward>([&] { return forward_pd<dnnl::lstm_forward>(cell, g, prop); }));
    case RnnCell::gru:
      return rnn_cached(op, key, made<dnnl::lbr_gru_forward>([&] { return forward_pd<dnnl::lbr_gru_forward>(cell, g, prop); }));
    case RnnCell::simple_rnn:
      return rnn_cached(op, key, made<dnnl::vanilla_rnn_forward>(
                                     [&] { return forward_pd<dnnl::vanilla_rnn_forward>(cell, g, prop); }));
  }
  throw std::logic_error("rnn: unknown cell");
}

onednn::CachedPrimitive backward_primitive(RnnCell cell, const Geometry& g) {
  const char* op = "rnn_backward";
  auto key = key_of(op, cell, g);
  switch (cell) {
    case RnnCell::lstm:
      return rnn_cached(op, key, made<dnnl::lstm_backward>(
                                     [&] { return backward_pd<dnnl::lstm_forward, dnnl::lstm_backward>(cell, g); }));
    case RnnCell::gru:
      return rnn_cached(op, key, made<dnnl::lbr_gru_backward>([&] {
                          return backward_pd<dnnl::lbr_gru_forward, dnnl::lbr_gru_backward>(cell, g);
                        }));
    case RnnCell::simple_rnn:
      return rnn_cached(op, key, made<dnnl::vanilla_rnn_backward>([&] {
                          return backward_pd<dnnl::vanilla_rnn_forward, dnnl::vanilla_rnn_backward>(cell, g);
                        }));
  }
  throw std::logic_error("rnn: unknown cell");
}

md arg_md(const onednn::CachedPrimitive& p, int arg) { return p.pd.query_md(dnnl::query::exec_arg_md, arg); }

// t (plain, as `plain` describes it) in the layout the primitive wants for arg: t itself, or a
// reordered copy kept in *keep.
dnnl::memory weights_for(const onednn::CachedPrimitive& p, int arg, const Tensor& t, const md& plain, Tensor* keep) {
  const md want = arg_md(p, arg);
  dnnl::memory m = onednn::memory_of(t, plain);
  if (want == plain) return m;
  dnnl::memory out;
  *keep = onednn::buffer_for(want, t.dtype(), &out);
  onednn::reorder("rnn_weights", m, out);
  return out;
}

// Weights for a chunk's primitive: an earlier chunk's copy when it has the layout wanted
// (equal chunks always do), else a new one kept in *kept.
dnnl::memory shared_weights(const onednn::CachedPrimitive& p, int arg, const std::vector<dnnl::memory>& earlier,
                            const Tensor& t, const md& plain, std::vector<Tensor>* kept) {
  const md want = arg_md(p, arg);
  for (const dnnl::memory& m : earlier) {
    if (m && m.get_desc() == want) return m;
  }
  Tensor keep;
  dnnl::memory m = weights_for(p, arg, t, plain, &keep);
  if (keep.defined()) kept->push_back(keep);
  return m;
}

// `from` reordered into `to`'s layout and added to it (a reorder with a sum post-op: no
// temporary, no second pass).
void add_reordered(const dnnl::memory& from, const dnnl::memory& to) {
  const md from_md = from.get_desc(), to_md = to.get_desc();
  auto prim = onednn::cached<dnnl::reorder>("rnn_weights_grad", onednn::KeyBuilder("reorder_add").add(from_md).add(to_md), [&] {
    dnnl::primitive_attr attr = onednn::default_attr();
    dnnl::post_ops sum;
    sum.append_sum(1.f);
    attr.set_post_ops(sum);
    return dnnl::reorder::primitive_desc(onednn::cpu_engine(), from_md, onednn::cpu_engine(), to_md, attr);
  });
  onednn::execute("rnn_weights_grad", prim.primitive, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
}

thread_local int forced_chunks = 0;

// The rows of each of `chunks` chunks: equal, the first ones a row longer where n does not divide.
std::vector<std::pair<int64_t, int64_t>> chunk_bounds(int64_t n, int chunks) {
  std::vector<std::pair<int64_t, int64_t>> out;
  const int64_t base = n / chunks, longer = n % chunks;
  int64_t begin = 0;
  for (int k = 0; k < chunks; ++k) {
    const int64_t end = begin + base + (k < longer ? 1 : 0);
    out.push_back({begin, end});
    begin = end;
  }
  return out;
}

using ChunkArgs = std::unordered_map<int, dnnl::memory>;

}  // namespace

bool native_bf16_rnn() { return cpu::effective_isa() >= cpu::Isa::avx512_core_bf16; }

int gate_count(RnnCell cell) { return cell == RnnCell::lstm ? 4 : cell == RnnCell::gru ? 3 : 1; }
int bias_gate_count(RnnCell cell) { return cell == RnnCell::simple_rnn ? 1 : 4; }
Tensor onednn_bias(RnnCell cell, const Tensor& keras_bias, int64_t u) {
  const Shape shape{bias_gate_count(cell), u};
  if (cell != RnnCell::gru) return keras_bias.alias(shape, contiguous_strides(shape), keras_bias.offset());
  Tensor out = Tensor::empty(shape);
  const float* in = keras_bias.data<float>();  // [input z r h | recurrent z r h]
  float* o = out.data<float>();
  for (int64_t k = 0; k < 2 * u; ++k) o[k] = in[k] + in[3 * u + k];
  std::copy_n(in + 2 * u, u, o + 2 * u);
  std::copy_n(in + 5 * u, u, o + 3 * u);
  return out;
}

bool has_cell_state(RnnCell cell) { return cell == RnnCell::lstm; }
const char* cell_name(RnnCell cell) {
  switch (cell) {
    case RnnCell::lstm: return "lstm";
    case RnnCell::gru: return "gru";
    case RnnCell::simple_rnn: return "simple_rnn";
  }
  return "?";
}

ForceRowChunks::ForceRowChunks(int chunks) : override_(forced_chunks, chunks) {}

std::vector<std::pair<int64_t, int64_t>> row_chunk_bounds(int64_t rows) {
  return chunk_bounds(rows, row_chunks(rows));
}

Tensor chunk_rows(const Tensor& t, int64_t begin, int64_t end) {
  if (!t.defined()) return t;
  if (begin == 0 && end == t.shape()[0]) return t;
  if (!t.is_contiguous()) throw std::logic_error("rnn: a chunk needs a contiguous tensor, got " + t.describe());
  Shape shape = t.shape();
  const int64_t row = t.numel() / shape[0];
  shape[0] = end - begin;
  return t.alias(shape, contiguous_strides(shape), t.offset() + begin * row);
}

void run_row_chunks(int chunks, const std::function<void(int)>& body) {
  onednn::profiler::Region timed;  // keeps the chunks' own primitives from being timed apart
  std::vector<std::exception_ptr> errors(chunks);
  if (chunks == 1) {
    body(0);
  } else {
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
    for (int k = 0; k < chunks; ++k) {
      onednn::profiler::Region counted_by_caller;  // the region's depth is per thread
      try {
        body(k);
      } catch (...) {
        errors[k] = std::current_exception();
      }
    }
  }
  if (timed.timing()) onednn::profiler::add_primitive(static_cast<int>(dnnl::primitive::kind::rnn), timed.elapsed());
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

int row_chunks(int64_t rows) {
  if (rows <= 1) return 1;
  if (forced_chunks > 0) return static_cast<int>(std::min<int64_t>(forced_chunks, rows));
  if (omp_in_parallel()) return 1;
  return static_cast<int>(std::min<int64_t>(omp_get_max_threads(), rows));
}

RnnPass rnn_forward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                    bool training) {
  geometry_of(cell, x, w);  // its dtype checks hold for both paths
  if (!training && small_batch_rnn_wins(cell, x.shape()[0], w.iter.shape()[0])) {
    return small_batch_rnn_forward(cell, x, w, h0, c0);
  }
  if (cell == RnnCell::lstm && training && composed_lstm_training()) return composed_lstm_forward(x, w, h0, c0);
  return onednn_rnn_forward(cell, x, w, h0, c0, training);
}

RnnPass onednn_rnn_forward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                           bool training) {
  const Geometry g = geometry_of(cell, x, w);
  RnnPass out;
  const DType data = x.dtype();
  out.y = Tensor::empty({g.n, g.t, g.u}, data);
  out.h = Tensor::empty({g.n, g.u}, data);
  const bool lstm = has_cell_state(cell);
  if (lstm) out.c = Tensor::empty({g.n, g.u});
  const md wl_plain = g.weights_layer(g.data, tag::ldigo), wi_plain = g.weights_iter(g.data, tag::ldigo);
  const dnnl::memory bias = onednn::memory_of(w.bias, g.bias());
  std::vector<onednn::CachedPrimitive> prims;
  std::vector<ChunkArgs> args;
  std::vector<dnnl::memory> layer_reads, iter_reads;
  for (auto [begin, end] : chunk_bounds(g.n, row_chunks(g.n))) {
    Geometry gc = g;
    gc.n = end - begin;
    prims.push_back(forward_primitive(cell, gc, training));
    const auto& prim = prims.back();
    RnnChunk chunk;
    chunk.begin = begin, chunk.end = end;
    chunk.layer_read = shared_weights(prim, DNNL_ARG_WEIGHTS_LAYER, layer_reads, w.layer, wl_plain, &out.weights_kept);
    chunk.iter_read = shared_weights(prim, DNNL_ARG_WEIGHTS_ITER, iter_reads, w.iter, wi_plain, &out.weights_kept);
    layer_reads.push_back(chunk.layer_read);
    iter_reads.push_back(chunk.iter_read);
    const md s = gc.state(gc.data), sc = gc.state(kF32);
    ChunkArgs a{{DNNL_ARG_SRC_LAYER, onednn::memory_of(chunk_rows(x, begin, end), gc.src(gc.data))},
                {DNNL_ARG_SRC_ITER, onednn::memory_of(chunk_rows(h0, begin, end), s)},
                {DNNL_ARG_WEIGHTS_LAYER, chunk.layer_read},
                {DNNL_ARG_WEIGHTS_ITER, chunk.iter_read},
                {DNNL_ARG_BIAS, bias},
                {DNNL_ARG_DST_LAYER, onednn::memory_of(chunk_rows(out.y, begin, end), gc.dst(gc.data))},
                {DNNL_ARG_DST_ITER, onednn::memory_of(chunk_rows(out.h, begin, end), s)}};
    if (lstm) {
      a[DNNL_ARG_SRC_ITER_C] = onednn::memory_of(chunk_rows(c0, begin, end), sc);
      a[DNNL_ARG_DST_ITER_C] = onednn::memory_of(chunk_rows(out.c, begin, end), sc);
    }
    if (training) {
      dnnl::memory ws;
      chunk.workspace = onednn::buffer_for(prim.pd.workspace_desc(), DType::u8, &ws);
      a[DNNL_ARG_WORKSPACE] = ws;
    }
    args.push_back(std::move(a));
    out.chunks.push_back(std::move(chunk));
  }
  run_row_chunks(static_cast<int>(prims.size()), [&](int k) { onednn::execute("rnn_forward", prims[k].primitive, args[k]); });
  return out;
}

RnnInputGrads rnn_backward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                           const RnnPass& pass, const Tensor& dy, const Tensor& dh, const Tensor& dc,
                           RnnWeights* dw, bool want_dx) {
  const Geometry g = geometry_of(cell, x, w);
  if (!pass.chunks.empty() && pass.chunks.front().composed) {
    return composed_lstm_backward(x, pass, dy, dh, dc, dw, want_dx);
  }
  if (!dy.defined()) return rnn_backward(cell, x, w, h0, c0, pass, Tensor::zeros(pass.y.shape()), dh, dc, dw, want_dx);
  const bool lstm = has_cell_state(cell);
  RnnInputGrads out;
  out.dx = Tensor::empty(x.shape());
  out.dh0 = Tensor::empty({g.n, g.u});
  if (lstm) out.dc0 = Tensor::empty({g.n, g.u});
  const md wl_plain = g.weights_layer(g.data, tag::ldigo), wi_plain = g.weights_iter(g.data, tag::ldigo);
  const md dwl_plain = g.weights_layer(kF32, tag::ldigo), dwi_plain = g.weights_iter(kF32, tag::ldigo);
  const dnnl::memory bias = onednn::memory_of(w.bias, g.bias());
  std::vector<Tensor> kept;  // weights and gradient buffers the chunks' memories point into
  std::vector<onednn::CachedPrimitive> prims;
  std::vector<ChunkArgs> args;
  // Per chunk, where it adds each weight gradient (dw itself for the first chunk where its
  // primitive wants the plain layout).
  std::vector<std::array<dnnl::memory, 3>> grads;
  std::vector<dnnl::memory> layer_reads, iter_reads;
  for (const RnnChunk& chunk : pass.chunks) {
    layer_reads.push_back(chunk.layer_read);
    iter_reads.push_back(chunk.iter_read);
  }
  const std::array<int, 3> grad_args{DNNL_ARG_DIFF_WEIGHTS_LAYER, DNNL_ARG_DIFF_WEIGHTS_ITER, DNNL_ARG_DIFF_BIAS};
  const std::array<const Tensor*, 3> grad_into{&dw->layer, &dw->iter, &dw->bias};
  const std::array<md, 3> grad_plain{dwl_plain, dwi_plain, g.bias()};
  for (const RnnChunk& chunk : pass.chunks) {
    const int64_t begin = chunk.begin, end = chunk.end;
    Geometry gc = g;
    gc.n = end - begin;
    prims.push_back(backward_primitive(cell, gc));
    const auto& prim = prims.back();
    const md s = gc.state(gc.data), f = gc.state(kF32);
    std::array<dnnl::memory, 3> grad;
    for (int k = 0; k < 3; ++k) {
      const md want = arg_md(prim, grad_args[k]);
      if (grads.empty() && want == grad_plain[k]) {
        grad[k] = onednn::memory_of(*grad_into[k], grad_plain[k]);
      } else {
        kept.push_back(onednn::buffer_for(want, DType::f32, &grad[k]));
        kept.back().fill(0.f);
      }
    }
    grads.push_back(grad);
    dnnl::memory ws(prim.pd.workspace_desc(), onednn::cpu_engine(), chunk.workspace.raw_data());
    ChunkArgs a{{DNNL_ARG_SRC_LAYER, onednn::memory_of(chunk_rows(x, begin, end), gc.src(gc.data))},
                {DNNL_ARG_SRC_ITER, onednn::memory_of(chunk_rows(h0, begin, end), s)},
                {DNNL_ARG_WEIGHTS_LAYER, shared_weights(prim, DNNL_ARG_WEIGHTS_LAYER, layer_reads, w.layer, wl_plain, &kept)},
                {DNNL_ARG_WEIGHTS_ITER, shared_weights(prim, DNNL_ARG_WEIGHTS_ITER, iter_reads, w.iter, wi_plain, &kept)},
                {DNNL_ARG_BIAS, bias},
                {DNNL_ARG_DST_LAYER, onednn::memory_of(chunk_rows(pass.y, begin, end), gc.dst(gc.data))},
                {DNNL_ARG_DST_ITER, onednn::memory_of(chunk_rows(pass.h, begin, end), s)},
                {DNNL_ARG_WORKSPACE, ws},
                {DNNL_ARG_DIFF_SRC_LAYER, onednn::memory_of(chunk_rows(out.dx, begin, end), gc.src(kF32))},
                {DNNL_ARG_DIFF_SRC_ITER, onednn::memory_of(chunk_rows(out.dh0, begin, end), f)},
                {DNNL_ARG_DIFF_WEIGHTS_LAYER, grad[0]},
                {DNNL_ARG_DIFF_WEIGHTS_ITER, grad[1]},
                {DNNL_ARG_DIFF_BIAS, grad[2]},
                {DNNL_ARG_DIFF_DST_LAYER, onednn::memory_of(chunk_rows(dy, begin, end), gc.dst(kF32))},
                {DNNL_ARG_DIFF_DST_ITER, onednn::memory_of(chunk_rows(dh, begin, end), f)}};
    // Later chunks' backward weights: this chunk's reordered copies serve them too.
    layer_reads.push_back(a[DNNL_ARG_WEIGHTS_LAYER]);
    iter_reads.push_back(a[DNNL_ARG_WEIGHTS_ITER]);
    if (lstm) {
      a[DNNL_ARG_SRC_ITER_C] = onednn::memory_of(chunk_rows(c0, begin, end), f);
      a[DNNL_ARG_DST_ITER_C] = onednn::memory_of(chunk_rows(pass.c, begin, end), f);
      a[DNNL_ARG_DIFF_SRC_ITER_C] = onednn::memory_of(chunk_rows(out.dc0, begin, end), f);
      a[DNNL_ARG_DIFF_DST_ITER_C] = onednn::memory_of(chunk_rows(dc, begin, end), f);
    }
    args.push_back(std::move(a));
  }
  run_row_chunks(static_cast<int>(prims.size()), [&](int k) { onednn::execute("rnn_backward", prims[k].primitive, args[k]); });
  // In chunk order, so the sum is the same every run.
  for (int k = 0; k < 3; ++k) {
    const dnnl::memory into = onednn::memory_of(*grad_into[k], grad_plain[k]);
    for (const auto& grad : grads) {
      if (grad[k].get_data_handle() != into.get_data_handle()) add_reordered(grad[k], into);
    }
  }
  return out;
}

}  // namespace kiln::rnn_detail
