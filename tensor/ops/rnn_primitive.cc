#include "tensor/ops/rnn_primitive.h"

#include <stdexcept>

#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"

namespace kiln::rnn_detail {
namespace {

using md = dnnl::memory::desc;
using tag = dnnl::memory::format_tag;
constexpr auto kF32 = dnnl::memory::data_type::f32;
constexpr auto kLeftToRight = dnnl::rnn_direction::unidirectional_left2right;

struct Geometry {
  int64_t n, t, i, u;
  int gates, bias_gates;
  md src() const { return {{t, n, i}, kF32, tag::ntc}; }
  md dst() const { return {{t, n, u}, kF32, tag::ntc}; }
  md state() const { return {{1, 1, n, u}, kF32, tag::ldnc}; }
  md weights_layer(tag layout) const { return {{1, 1, i, gates, u}, kF32, layout}; }
  md weights_iter(tag layout) const { return {{1, 1, u, gates, u}, kF32, layout}; }
  md bias() const { return {{1, 1, bias_gates, u}, kF32, tag::ldgo}; }
};

Geometry geometry_of(RnnCell cell, const Tensor& x, const RnnWeights& w) {
  const int g = gate_count(cell);
  return {x.shape()[0], x.shape()[1], x.shape()[2], w.iter.shape()[0], g, bias_gate_count(cell)};
}

onednn::KeyBuilder key_of(const char* op, RnnCell cell, const Geometry& g) {
  return std::move(onednn::KeyBuilder(op).add(cell_name(cell)).add(g.n).add(g.t).add(g.i).add(g.u));
}

// The forward primitive descriptor of a cell; weights in the layout oneDNN picks.
template <typename Fwd>
typename Fwd::primitive_desc forward_pd(RnnCell cell, const Geometry& g, dnnl::prop_kind prop) {
  const md wl = g.weights_layer(tag::any), wi = g.weights_iter(tag::any);
  const md s = g.state(), none;
  if constexpr (std::is_same_v<Fwd, dnnl::lstm_forward>) {
    return {typename Fwd::desc(prop, kLeftToRight, g.src(), s, s, wl, wi, none, none, g.bias(), g.dst(), s, s),
            onednn::default_attr(), onednn::cpu_engine()};
  } else if constexpr (std::is_same_v<Fwd, dnnl::lbr_gru_forward>) {
    return {typename Fwd::desc(prop, kLeftToRight, g.src(), s, wl, wi, g.bias(), g.dst(), s), onednn::default_attr(),
            onednn::cpu_engine()};
  } else {
    (void)cell;
    return {typename Fwd::desc(prop, dnnl::algorithm::eltwise_tanh, kLeftToRight, g.src(), s, wl, wi, g.bias(), g.dst(), s),
            onednn::default_attr(), onednn::cpu_engine()};
  }
}

template <typename Fwd, typename Bwd>
typename Bwd::primitive_desc backward_pd(RnnCell cell, const Geometry& g) {
  const md wl = g.weights_layer(tag::any), wi = g.weights_iter(tag::any);
  const md s = g.state(), none;
  const auto prop = dnnl::prop_kind::backward;
  auto hint = forward_pd<Fwd>(cell, g, dnnl::prop_kind::forward_training);
  if constexpr (std::is_same_v<Bwd, dnnl::lstm_backward>) {
    return {typename Bwd::desc(prop, kLeftToRight, g.src(), s, s, wl, wi, none, none, g.bias(), g.dst(), s, s, g.src(), s, s,
                      wl, wi, none, none, g.bias(), g.dst(), s, s),
            onednn::default_attr(), onednn::cpu_engine(), hint};
  } else if constexpr (std::is_same_v<Bwd, dnnl::lbr_gru_backward>) {
    return {typename Bwd::desc(prop, kLeftToRight, g.src(), s, wl, wi, g.bias(), g.dst(), s, g.src(), s, wl, wi, g.bias(),
                      g.dst(), s),
            onednn::default_attr(), onednn::cpu_engine(), hint};
  } else {
    return {typename Bwd::desc(prop, dnnl::algorithm::eltwise_tanh, kLeftToRight, g.src(), s, wl, wi, g.bias(), g.dst(), s,
                      g.src(), s, wl, wi, g.bias(), g.dst(), s),
            onednn::default_attr(), onednn::cpu_engine(), hint};
  }
}

onednn::CachedPrimitive forward_primitive(RnnCell cell, const Geometry& g, bool training) {
  const char* op = "rnn_forward";
  const auto prop = training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  auto key = key_of(op, cell, g).add(int64_t(training));
  switch (cell) {
    case RnnCell::lstm:
      return onednn::cached<dnnl::lstm_forward>(op, key, [&] { return forward_pd<dnnl::lstm_forward>(cell, g, prop); });
    case RnnCell::gru:
      return onednn::cached<dnnl::lbr_gru_forward>(op, key,
                                                   [&] { return forward_pd<dnnl::lbr_gru_forward>(cell, g, prop); });
    case RnnCell::simple_rnn:
      return onednn::cached<dnnl::vanilla_rnn_forward>(
          op, key, [&] { return forward_pd<dnnl::vanilla_rnn_forward>(cell, g, prop); });
  }
  throw std::logic_error("rnn: unknown cell");
}

onednn::CachedPrimitive backward_primitive(RnnCell cell, const Geometry& g) {
  const char* op = "rnn_backward";
  auto key = key_of(op, cell, g);
  switch (cell) {
    case RnnCell::lstm:
      return onednn::cached<dnnl::lstm_backward>(
          op, key, [&] { return backward_pd<dnnl::lstm_forward, dnnl::lstm_backward>(cell, g); });
    case RnnCell::gru:
      return onednn::cached<dnnl::lbr_gru_backward>(
          op, key, [&] { return backward_pd<dnnl::lbr_gru_forward, dnnl::lbr_gru_backward>(cell, g); });
    case RnnCell::simple_rnn:
      return onednn::cached<dnnl::vanilla_rnn_backward>(
          op, key, [&] { return backward_pd<dnnl::vanilla_rnn_forward, dnnl::vanilla_rnn_backward>(cell, g); });
  }
  throw std::logic_error("rnn: unknown cell");
}

md arg_md(const onednn::CachedPrimitive& p, int arg) { return p.pd.query_md(dnnl::query::exec_arg_md, arg); }

// t (plain, as `plain` describes it) in the layout the primitive wants for arg; a reordered
// copy lives in *keep.
dnnl::memory weights_for(const onednn::CachedPrimitive& p, int arg, const Tensor& t, const md& plain, Tensor* keep) {
  const md want = arg_md(p, arg);
  dnnl::memory m = onednn::memory_of(t, plain);
  if (want == plain) return m;
  dnnl::memory out;
  *keep = onednn::buffer_for(want, DType::f32, &out);
  onednn::reorder("rnn_weights", m, out);
  return out;
}

// A zeroed buffer in the layout the primitive gives a weight gradient in (it accumulates).
dnnl::memory zeroed_for(const onednn::CachedPrimitive& p, int arg, Tensor* keep) {
  dnnl::memory out;
  *keep = onednn::buffer_for(arg_md(p, arg), DType::f32, &out);
  keep->fill(0.f);
  return out;
}

// Adds a weight gradient held in the primitive's layout into the plain accumulator.
void accumulate(const dnnl::memory& grad, const md& plain, const Tensor& into) {
  Tensor plain_grad = Tensor::empty(into.shape());
  dnnl::memory dst = onednn::memory_of(plain_grad, plain);
  onednn::reorder("rnn_weights_grad", grad, dst);
  float* out = into.data<float>();
  const float* in = plain_grad.data<float>();
  const int64_t n = into.numel();
  for (int64_t k = 0; k < n; ++k) out[k] += in[k];
}

}  // namespace

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
  const Geometry g = geometry_of(cell, x, w);
  auto prim = forward_primitive(cell, g, training);
  RnnPass out;
  out.y = Tensor::empty({g.n, g.t, g.u});
  out.h = Tensor::empty({g.n, g.u});
  Tensor wl_keep, wi_keep;
  const md s = g.state();
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC_LAYER, onednn::memory_of(x, g.src())},
      {DNNL_ARG_SRC_ITER, onednn::memory_of(h0, s)},
      {DNNL_ARG_WEIGHTS_LAYER, weights_for(prim, DNNL_ARG_WEIGHTS_LAYER, w.layer, g.weights_layer(tag::ldigo), &wl_keep)},
      {DNNL_ARG_WEIGHTS_ITER, weights_for(prim, DNNL_ARG_WEIGHTS_ITER, w.iter, g.weights_iter(tag::ldigo), &wi_keep)},
      {DNNL_ARG_BIAS, onednn::memory_of(w.bias, g.bias())},
      {DNNL_ARG_DST_LAYER, onednn::memory_of(out.y, g.dst())},
      {DNNL_ARG_DST_ITER, onednn::memory_of(out.h, s)}};
  if (has_cell_state(cell)) {
    out.c = Tensor::empty({g.n, g.u});
    args[DNNL_ARG_SRC_ITER_C] = onednn::memory_of(c0, s);
    args[DNNL_ARG_DST_ITER_C] = onednn::memory_of(out.c, s);
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
  const md s = g.state();
  const md wl_plain = g.weights_layer(tag::ldigo), wi_plain = g.weights_iter(tag::ldigo);
  dnnl::memory ws(prim.pd.workspace_desc(), onednn::cpu_engine(), pass.workspace.raw_data());
  dnnl::memory dwl = zeroed_for(prim, DNNL_ARG_DIFF_WEIGHTS_LAYER, &dwl_keep);
  dnnl::memory dwi = zeroed_for(prim, DNNL_ARG_DIFF_WEIGHTS_ITER, &dwi_keep);
  dnnl::memory db = zeroed_for(prim, DNNL_ARG_DIFF_BIAS, &db_keep);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC_LAYER, onednn::memory_of(x, g.src())},
      {DNNL_ARG_SRC_ITER, onednn::memory_of(h0, s)},
      {DNNL_ARG_WEIGHTS_LAYER, weights_for(prim, DNNL_ARG_WEIGHTS_LAYER, w.layer, wl_plain, &wl_keep)},
      {DNNL_ARG_WEIGHTS_ITER, weights_for(prim, DNNL_ARG_WEIGHTS_ITER, w.iter, wi_plain, &wi_keep)},
      {DNNL_ARG_BIAS, onednn::memory_of(w.bias, g.bias())},
      {DNNL_ARG_DST_LAYER, onednn::memory_of(pass.y, g.dst())},
      {DNNL_ARG_DST_ITER, onednn::memory_of(pass.h, s)},
      {DNNL_ARG_WORKSPACE, ws},
      {DNNL_ARG_DIFF_SRC_LAYER, onednn::memory_of(out.dx, g.src())},
      {DNNL_ARG_DIFF_SRC_ITER, onednn::memory_of(out.dh0, s)},
      {DNNL_ARG_DIFF_WEIGHTS_LAYER, dwl},
      {DNNL_ARG_DIFF_WEIGHTS_ITER, dwi},
      {DNNL_ARG_DIFF_BIAS, db},
      {DNNL_ARG_DIFF_DST_LAYER, onednn::memory_of(dy, g.dst())},
      {DNNL_ARG_DIFF_DST_ITER, onednn::memory_of(dh, s)}};
  if (has_cell_state(cell)) {
    out.dc0 = Tensor::empty({g.n, g.u});
    args[DNNL_ARG_SRC_ITER_C] = onednn::memory_of(c0, s);
    args[DNNL_ARG_DST_ITER_C] = onednn::memory_of(pass.c, s);
    args[DNNL_ARG_DIFF_SRC_ITER_C] = onednn::memory_of(out.dc0, s);
    args[DNNL_ARG_DIFF_DST_ITER_C] = onednn::memory_of(dc, s);
  }
  onednn::execute("rnn_backward", prim.primitive, args);
  accumulate(dwl, wl_plain, dw->layer);
  accumulate(dwi, wi_plain, dw->iter);
  accumulate(db, g.bias(), dw->bias);
  return out;
}

}  // namespace kiln::rnn_detail
