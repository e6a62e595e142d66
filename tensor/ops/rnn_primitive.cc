#include "tensor/ops/rnn_primitive.h"

#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "tensor/onednn/engine.h"
#include "tensor/onednn/isa.h"
#include "tensor/onednn/primitive_cache.h"
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
  const md dwl = g.weights_layer(kF32, tag::any), dwi = g.weights_iter(kF32, tag::any);
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

// Where the primitive adds a weight gradient (it accumulates): straight into the plain f32
// accumulator when it wants that layout, else into a zeroed buffer of its own, which
// add_back() then adds into the accumulator.
dnnl::memory grad_for(const onednn::CachedPrimitive& p, int arg, const Tensor& into, const md& plain, Tensor* keep) {
  const md want = arg_md(p, arg);
  if (want == plain) return onednn::memory_of(into, plain);
  dnnl::memory out;
  *keep = onednn::buffer_for(want, DType::f32, &out);
  keep->fill(0.f);
  return out;
}

void add_back(const dnnl::memory& grad, const Tensor& keep, const md& plain, const Tensor& into) {
  if (!keep.defined()) return;  // the primitive wrote into the accumulator itself
  Tensor plain_grad = Tensor::empty(into.shape());
  dnnl::memory dst = onednn::memory_of(plain_grad, plain);
  onednn::reorder("rnn_weights_grad", grad, dst);
  float* out = into.data<float>();
  const float* in = plain_grad.data<float>();
  const int64_t n = into.numel();
  for (int64_t k = 0; k < n; ++k) out[k] += in[k];
}

}  // namespace

bool native_bf16_rnn() { return cpu::effective_isa() >= cpu::Isa::avx512_core_bf16; }

int gate_count(RnnCell cell) { return cell == RnnCell::lstm ? 4 : cell == RnnCell::gru ? 3 : 1; }
int bias_gate_count(RnnCell cell) { return cell == RnnCell::simple_rnn ? 1 : 4; }
bool has_cell_state(RnnCell cell) { return cell == RnnCell::lstm; }
const char* cell_name(RnnCell cell) {
  switch (cell) {
    case RnnCell::lstm: return "lstm";
    case RnnCell::gru: return "gru";
    case RnnCell::simple_rnn: return "simple_rnn";
  }
  return "?";
}

RnnPass rnn_forward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                    bool training) {
  geometry_of(cell, x, w);  // its dtype checks hold for both paths
  if (!training && small_batch_rnn_wins(x.shape()[0], w.iter.shape()[0])) {
    return small_batch_rnn_forward(cell, x, w, h0, c0);
  }
  return onednn_rnn_forward(cell, x, w, h0, c0, training);
}

RnnPass onednn_rnn_forward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                           bool training) {
  const Geometry g = geometry_of(cell, x, w);
  auto prim = forward_primitive(cell, g, training);
  RnnPass out;
  const DType data = x.dtype();
  out.y = Tensor::empty({g.n, g.t, g.u}, data);
  out.h = Tensor::empty({g.n, g.u}, data);
  const md s = g.state(g.data), sc = g.state(kF32);
  out.layer_read = weights_for(prim, DNNL_ARG_WEIGHTS_LAYER, w.layer, g.weights_layer(g.data, tag::ldigo), &out.layer_kept);
  out.iter_read = weights_for(prim, DNNL_ARG_WEIGHTS_ITER, w.iter, g.weights_iter(g.data, tag::ldigo), &out.iter_kept);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC_LAYER, onednn::memory_of(x, g.src(g.data))},
      {DNNL_ARG_SRC_ITER, onednn::memory_of(h0, s)},
      {DNNL_ARG_WEIGHTS_LAYER, out.layer_read},
      {DNNL_ARG_WEIGHTS_ITER, out.iter_read},
      {DNNL_ARG_BIAS, onednn::memory_of(w.bias, g.bias())},
      {DNNL_ARG_DST_LAYER, onednn::memory_of(out.y, g.dst(g.data))},
      {DNNL_ARG_DST_ITER, onednn::memory_of(out.h, s)}};
  if (has_cell_state(cell)) {
    out.c = Tensor::empty({g.n, g.u});
    args[DNNL_ARG_SRC_ITER_C] = onednn::memory_of(c0, sc);
    args[DNNL_ARG_DST_ITER_C] = onednn::memory_of(out.c, sc);
  }
  if (training) {
    dnnl::memory ws;
    out.workspace = onednn::buffer_for(prim.pd.workspace_desc(), DType::u8, &ws);
    args[DNNL_ARG_WORKSPACE] = ws;
  }
  onednn::execute("rnn_forward", prim.primitive, args);
  return out;
}

RnnInputGrads rnn_backward(RnnCell cell, const Tensor& x, const RnnWeights& w, const Tensor& h0, const Tensor& c0,
                           const RnnPass& pass, const Tensor& dy, const Tensor& dh, const Tensor& dc,
                           RnnWeights* dw) {
  const Geometry g = geometry_of(cell, x, w);
  auto prim = backward_primitive(cell, g);
  RnnInputGrads out;
  out.dx = Tensor::empty(x.shape());
  out.dh0 = Tensor::empty({g.n, g.u});
  Tensor wl_keep, wi_keep, dwl_keep, dwi_keep, db_keep;
  const md s = g.state(g.data), f = g.state(kF32);
  const md wl_plain = g.weights_layer(g.data, tag::ldigo), wi_plain = g.weights_iter(g.data, tag::ldigo);
  const md dwl_plain = g.weights_layer(kF32, tag::ldigo), dwi_plain = g.weights_iter(kF32, tag::ldigo);
  // The forward's reordered weights serve again when the backward reads the same layout.
  auto weights = [&](int arg, const dnnl::memory& read, const Tensor& plain_t, const md& plain, Tensor* keep) {
    return read && arg_md(prim, arg) == read.get_desc() ? read : weights_for(prim, arg, plain_t, plain, keep);
  };
  dnnl::memory ws(prim.pd.workspace_desc(), onednn::cpu_engine(), pass.workspace.raw_data());
  dnnl::memory dwl = grad_for(prim, DNNL_ARG_DIFF_WEIGHTS_LAYER, dw->layer, dwl_plain, &dwl_keep);
  dnnl::memory dwi = grad_for(prim, DNNL_ARG_DIFF_WEIGHTS_ITER, dw->iter, dwi_plain, &dwi_keep);
  dnnl::memory db = grad_for(prim, DNNL_ARG_DIFF_BIAS, dw->bias, g.bias(), &db_keep);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC_LAYER, onednn::memory_of(x, g.src(g.data))},
      {DNNL_ARG_SRC_ITER, onednn::memory_of(h0, s)},
      {DNNL_ARG_WEIGHTS_LAYER, weights(DNNL_ARG_WEIGHTS_LAYER, pass.layer_read, w.layer, wl_plain, &wl_keep)},
      {DNNL_ARG_WEIGHTS_ITER, weights(DNNL_ARG_WEIGHTS_ITER, pass.iter_read, w.iter, wi_plain, &wi_keep)},
      {DNNL_ARG_BIAS, onednn::memory_of(w.bias, g.bias())},
      {DNNL_ARG_DST_LAYER, onednn::memory_of(pass.y, g.dst(g.data))},
      {DNNL_ARG_DST_ITER, onednn::memory_of(pass.h, s)},
      {DNNL_ARG_WORKSPACE, ws},
      {DNNL_ARG_DIFF_SRC_LAYER, onednn::memory_of(out.dx, g.src(kF32))},
      {DNNL_ARG_DIFF_SRC_ITER, onednn::memory_of(out.dh0, f)},
      {DNNL_ARG_DIFF_WEIGHTS_LAYER, dwl},
      {DNNL_ARG_DIFF_WEIGHTS_ITER, dwi},
      {DNNL_ARG_DIFF_BIAS, db},
      {DNNL_ARG_DIFF_DST_LAYER, onednn::memory_of(dy, g.dst(kF32))},
      {DNNL_ARG_DIFF_DST_ITER, onednn::memory_of(dh, f)}};
  if (has_cell_state(cell)) {
    out.dc0 = Tensor::empty({g.n, g.u});
    args[DNNL_ARG_SRC_ITER_C] = onednn::memory_of(c0, f);
    args[DNNL_ARG_DST_ITER_C] = onednn::memory_of(pass.c, f);
    args[DNNL_ARG_DIFF_SRC_ITER_C] = onednn::memory_of(out.dc0, f);
    args[DNNL_ARG_DIFF_DST_ITER_C] = onednn::memory_of(dc, f);
  }
  onednn::execute("rnn_backward", prim.primitive, args);
  add_back(dwl, dwl_keep, dwl_plain, dw->layer);
  add_back(dwi, dwi_keep, dwi_plain, dw->iter);
  add_back(db, db_keep, g.bias(), dw->bias);
  return out;
}

}  // namespace kiln::rnn_detail
