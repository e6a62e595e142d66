#include "runtime_export/plan.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "tensor/onednn/engine.h"
#include "tensor/onednn/isa.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/ops/ops.h"
#include "tensor/ops/registry.h"

namespace kiln::runtime_export {
namespace {

using dnnl::memory;
using tag = memory::format_tag;

// Kiln shapes -> oneDNN dims. 4-D tensors are NHWC images, which oneDNN calls {N, C, H, W}:
// the "plain" layout of a 4-D tensor is then nhwc, byte for byte Kiln's row-major NHWC.
memory::dims dnnl_dims(const Shape& s) {
  if (s.size() == 4) return {s[0], s[3], s[1], s[2]};
  if (s.empty()) return {1};
  return memory::dims(s.begin(), s.end());
}

memory::desc plain_desc(const Shape& s, DType dtype) {
  memory::dims dims = dnnl_dims(s);
  if (s.size() == 4) return memory::desc(dims, onednn::to_dnnl(dtype), tag::nhwc);
  memory::dims strides(dims.size());
  int64_t stride = 1;
  for (size_t i = dims.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= std::max<int64_t>(dims[i], 1);
  }
  return memory::desc(dims, onednn::to_dnnl(dtype), strides);
}

bool is_float(DType d) { return d == DType::f32 || d == DType::bf16; }
bool is_int8(DType d) { return d == DType::u8 || d == DType::s8; }

// The same layout with another element type (int8 data in the blocked layout of the f32
// tensor it was quantized from, and back).
memory::desc with_dtype(const memory::desc& d, DType dtype) {
  dnnl_memory_desc_t c = d.data;
  c.data_type = static_cast<dnnl_data_type_t>(onednn::to_dnnl(dtype));
  return memory::desc(c);
}

}  // namespace

const Tensor& PackedWeights::get(int value, const Tensor& source, const dnnl::memory::desc& source_desc,
                                 const dnnl::memory::desc& want) {
  const dnnl_memory_desc_t& c = want.data;
  std::string key = std::to_string(value) + "|" +
                    std::string(reinterpret_cast<const char*>(&c), sizeof(c));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = packed_.find(key);
  if (it != packed_.end()) return it->second;
  dnnl::memory to;
  Tensor packed = onednn::buffer_for(want, DType::u8, &to);
  Tensor dense = source.is_contiguous() ? source : source.clone_detached();
  dnnl::memory from(source_desc, onednn::cpu_engine(), dense.raw_data());
  onednn::reorder("inference_weights", from, to);
  return packed_.emplace(key, packed).first->second;
}

// ---------------------------------------------------------------------------------------

namespace {

enum class Home { slot, constant, input, output };

// A buffer the plan reads or writes: a graph value in some layout, a reordered copy of one,
// or a view of another (alias_of) with other dims.
struct PTensor {
  Shape shape;  // Kiln's logical shape
  DType dtype = DType::f32;
  memory::desc desc;
  Home home = Home::slot;
  int alias_of = -1;  // shares the root's bytes
  Tensor constant;    // Home::constant
  int index = -1;     // Home::input / Home::output: which one
  int slot = -1;      // Home::slot roots, after liveness
};

struct Step {
  std::string kind;  // what describe() counts
  bool fused = false;
  // A oneDNN primitive with its arguments...
  dnnl::primitive prim;
  bool has_prim = false;
  std::vector<std::pair<int, int>> bind;  // (DNNL_ARG_*, PTensor)
  memory::desc scratchpad;
  // ... or an eager op (reads/writes Kiln-plain tensors).
  ops::Attrs call;
  std::vector<int> reads, writes;
};

struct Workspace {
  std::vector<Tensor> slots;
  std::vector<Tensor> scratch;  // one per step that needs it (steps run one after another, so
                                // they could share; per step keeps each descriptor exact)
  std::vector<memory> mems;     // per PTensor
  std::vector<std::unordered_map<int, memory>> args;  // per step
};

}  // namespace

struct Plan::Impl {
  Options options;
  std::vector<PTensor> tensors;
  std::vector<Step> steps;
  std::vector<size_t> slot_bytes;
  std::vector<int> input_tensors, output_tensors;
  std::vector<std::pair<int, int>> input_views;  // (tensor, input index): views of an input
  std::vector<DType> output_dtypes;
  std::vector<Shape> output_shapes;

  mutable std::mutex pool_mu;
  mutable std::vector<std::unique_ptr<Workspace>> pool;

  int root(int t) const {
    while (tensors[t].alias_of >= 0) t = tensors[t].alias_of;
    return t;
  }

  int add_tensor(PTensor t) {
    tensors.push_back(std::move(t));
    return static_cast<int>(tensors.size()) - 1;
  }
  int new_slot(const Shape& shape, DType dtype, const memory::desc& desc) {
    return add_tensor({shape, dtype, desc, Home::slot});
  }
  int alias(int of, const Shape& shape, const memory::desc& desc, std::optional<DType> dtype = std::nullopt) {
    PTensor t{shape, dtype.value_or(tensors[of].dtype), desc, Home::slot};
    t.alias_of = of;
    return add_tensor(std::move(t));
  }

  void add_primitive(const std::string& kind, const dnnl::primitive_desc_base& pd, dnnl::primitive prim,
                     std::vector<std::pair<int, int>> bind, bool fused = false) {
    Step s;
    s.kind = kind;
    s.fused = fused;
    s.prim = std::move(prim);
    s.has_prim = true;
    s.bind = std::move(bind);
    s.scratchpad = pd.scratchpad_desc();
    cpu::record_impl(("inference " + kind).c_str(), pd.impl_info_str(), kind);
    steps.push_back(std::move(s));
  }

  // t's contents laid out as `want` (a reorder step when the layout or dtype differs).
  std::map<std::pair<int, std::string>, int> reordered;
  int as_desc(int t, const memory::desc& want, DType want_dtype) {
    if (tensors[t].desc == want) return t;
    const dnnl_memory_desc_t& c = want.data;
    auto key = std::make_pair(t, std::string(reinterpret_cast<const char*>(&c), sizeof(c)));
    auto it = reordered.find(key);
    if (it != reordered.end()) return it->second;
    int out = new_slot(tensors[t].shape, want_dtype, want);
    auto pd = dnnl::reorder::primitive_desc(onednn::cpu_engine(), tensors[t].desc, onednn::cpu_engine(), want,
                                            onednn::default_attr());
    add_primitive("reorder", pd, dnnl::reorder(pd), {{DNNL_ARG_FROM, t}, {DNNL_ARG_TO, out}});
    reordered[key] = out;
    return out;
  }
  void forget_reorders_of(int t) {
    for (auto it = reordered.begin(); it != reordered.end();) {
      it = it->first.first == t ? reordered.erase(it) : std::next(it);
    }
  }
  int as_plain(int t, DType dtype) { return as_desc(t, plain_desc(tensors[t].shape, dtype), dtype); }
  int as_plain(int t) { return as_plain(t, tensors[t].dtype); }

  DType float_dtype() const { return options.compute; }
};

namespace {

dnnl::algorithm epilogue_algorithm(Epilogue e) {
  switch (e) {
    case Epilogue::relu: return dnnl::algorithm::eltwise_relu;
    case Epilogue::gelu_erf: return dnnl::algorithm::eltwise_gelu_erf;
    case Epilogue::gelu_tanh: return dnnl::algorithm::eltwise_gelu_tanh;
    case Epilogue::none: break;
  }
  return dnnl::algorithm::undef;
}

// Builds a Plan's steps node by node. Values map graph value -> PTensor.
class Builder {
 public:
  Builder(Plan::Impl& p, const graph::Graph& g, const std::vector<Shape>& input_shapes, PackedWeights& weights)
      : p_(p), g_(g), weights_(weights), value_(g.values.size(), -1) {
    batch_ = input_shapes.empty() || input_shapes[0].empty() ? 1 : input_shapes[0][0];
    last_read_.assign(g.values.size(), -1);
    for (size_t k = 0; k < g.nodes.size(); ++k) {
      for (int i : g.nodes[k].inputs) last_read_[i] = static_cast<int>(k);
    }
    for (int o : g.outputs) last_read_[o] = static_cast<int>(g.nodes.size());
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      const graph::Value& v = g.values[g.inputs[i]];
      PTensor t{input_shapes[i], v.dtype, plain_desc(input_shapes[i], v.dtype), Home::input};
      t.index = static_cast<int>(i);
      value_[g.inputs[i]] = p_.add_tensor(std::move(t));
      p_.input_tensors.push_back(value_[g.inputs[i]]);
    }
    for (const graph::Constant& c : g.constants) {
      Tensor dense = c.tensor.is_contiguous() ? c.tensor : c.tensor.clone_detached();
      PTensor t{dense.shape(), dense.dtype(), plain_desc(dense.shape(), dense.dtype()), Home::constant};
      t.constant = dense;
      value_[c.value] = p_.add_tensor(std::move(t));
    }
  }

  void build() {
    for (size_t k = 0; k < g_.nodes.size(); ++k) {
      node_ = static_cast<int>(k);
      const graph::Node& n = g_.nodes[k];
      const std::string& op = n.call.op();
      bool done = false;
      if (op == "conv2d" || op == "fused_conv2d") done = conv(n);
      else if (op == "linear" || op == "fused_linear") done = linear(n);
      else if (op == "max_pool2d" || op == "avg_pool2d") done = pool(n);
      else if (op == "reshape") done = reshape(n);
      else if (op == "cast") done = cast(n);
      else if (op == "add" || op == "add_relu") done = add(n);
      else if (op == "softmax" || op == "log_softmax") done = softmax(n);
      else if (op == "batch_norm_inference") done = batch_norm(n);
      else if (op == "quantize_linear" || op == "dequantize_linear") done = requantize(n);
      else if (op == "qconv2d") done = qconv(n);
      else if (op == "qlinear") done = qlinear(n);
      else done = eltwise(n);
      if (!done) fallback(n);
    }
    for (size_t i = 0; i < g_.outputs.size(); ++i) {
      int src = value_[g_.outputs[i]];
      const graph::Value& v = g_.values[g_.outputs[i]];
      PTensor t{p_.tensors[src].shape, v.dtype, plain_desc(p_.tensors[src].shape, v.dtype), Home::output};
      t.index = static_cast<int>(i);
      int out = p_.add_tensor(std::move(t));
      auto pd = dnnl::reorder::primitive_desc(onednn::cpu_engine(), p_.tensors[src].desc, onednn::cpu_engine(),
                                              p_.tensors[out].desc, onednn::default_attr());
      p_.add_primitive("output", pd, dnnl::reorder(pd), {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, out}});
      p_.output_tensors.push_back(out);
      p_.output_dtypes.push_back(v.dtype);
      p_.output_shapes.push_back(p_.tensors[src].shape);
    }
  }

 private:
  Shape concrete(const Shape& s) const {
    Shape out = s;
    for (int64_t& d : out) {
      if (d == graph::kBatch) d = batch_;
    }
    return out;
  }
  const PTensor& t(int id) const { return p_.tensors[id]; }
  bool constant(int value) const { return t(value_[value]).home == Home::constant; }

  // The residual of a fused node laid out as the primitive's destination: its own buffer when
  // nothing reads it afterwards (the sum post-op then accumulates in place), a copy otherwise.
  int destination_for_residual(int residual_value, const memory::desc& dst_desc, const Shape& shape, DType dtype) {
    int r = value_[residual_value];
    bool last_reader = last_read_[residual_value] == node_;
    if (last_reader && t(r).home == Home::slot && t(r).alias_of < 0 && !aliased_.count(r) && t(r).desc == dst_desc) {
      p_.forget_reorders_of(r);  // r now holds the new value
      return r;
    }
    int dst = p_.new_slot(shape, dtype, dst_desc);
    auto pd = dnnl::reorder::primitive_desc(onednn::cpu_engine(), t(r).desc, onednn::cpu_engine(), dst_desc,
                                            onednn::default_attr());
    p_.add_primitive("residual copy", pd, dnnl::reorder(pd), {{DNNL_ARG_FROM, r}, {DNNL_ARG_TO, dst}});
    return dst;
  }

  dnnl::primitive_attr epilogue_attr(bool residual, Epilogue act) {
    dnnl::primitive_attr attr = onednn::default_attr();
    dnnl::post_ops po;
    if (residual) po.append_sum(1.f);
    if (act != Epilogue::none) po.append_eltwise(1.f, epilogue_algorithm(act), 0.f, 0.f);
    attr.set_post_ops(po);
    return attr;
  }

  int bias_tensor(const graph::Node& n, int64_t channels, const memory::dims& dims) {
    const Tensor b = t(value_[n.inputs[2]]).constant;
    Tensor f = b.dtype() == DType::f32 ? b : kiln::cast(b, DType::f32);
    if (f.numel() != channels) throw std::invalid_argument("inference: bias of " + b.describe() + " for " + std::to_string(channels) + " channels");
    PTensor bt{f.shape(), DType::f32, memory::desc(dims, memory::data_type::f32, dims.size() == 1 ? tag::a : tag::ab),
               Home::constant};
    bt.constant = f.clone_detached();
    return p_.add_tensor(std::move(bt));
  }

  bool conv(const graph::Node& n) {
    if (!constant(n.inputs[1]) || (n.inputs.size() > 2 && !constant(n.inputs[2]))) return false;
    const bool fused = n.call.op() == "fused_conv2d";
    Conv2dAttrs a;
    Epilogue act = Epilogue::none;
    if (fused) {
      a = conv2d_geometry_from(n.call);
      act = epilogue_from_name(n.call.get_string("activation"));
    } else {
      a = conv2d_options_from(n.call);
      act = a.activation == FusedActivation::relu ? Epilogue::relu : Epilogue::none;
    }
    int x = value_[n.inputs[0]];
    const Shape xs = t(x).shape;  // a copy: adding tensors moves them
    const Tensor w = t(value_[n.inputs[1]]).constant;
    if (xs.size() != 4 || w.ndim() != 4 || !is_float(t(x).dtype)) return false;
    const int64_t N = xs[0], H = xs[1], W = xs[2], C = xs[3];
    const int64_t KH = w.shape()[0], KW = w.shape()[1], CG = w.shape()[2], O = w.shape()[3], G = a.groups;
    if (G <= 0 || CG * G != C || O % G != 0) return false;  // the eager op names the mismatch
    std::string shapes = "x " + shape_str(xs) + ", kernel " + shape_str(w.shape());
    SpatialPlan ph = plan_spatial(H, KH, a.strides[0], a.dilation[0], a.padding, "conv2d", shapes);
    SpatialPlan pw = plan_spatial(W, KW, a.strides[1], a.dilation[1], a.padding, "conv2d", shapes);
    const auto dt = onednn::to_dnnl(p_.float_dtype());
    memory::dims wdims = G == 1 ? memory::dims{O, C, KH, KW} : memory::dims{G, O / G, CG, KH, KW};
    memory::desc src_any({N, C, H, W}, dt, tag::any), w_any(wdims, dt, tag::any), dst_any({N, O, ph.out, pw.out}, dt, tag::any);
    const bool has_bias = n.inputs.size() > 2;
    memory::desc bias_md = has_bias ? memory::desc({O}, memory::data_type::f32, tag::a) : memory::desc();
    const bool residual = n.inputs.size() > 3;
    dnnl::convolution_forward::primitive_desc pd;
    try {
      pd = dnnl::convolution_forward::primitive_desc(
          dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_any,
                                          w_any, bias_md, dst_any, {a.strides[0], a.strides[1]},
                                          {a.dilation[0] - 1, a.dilation[1] - 1}, {ph.pad_before, pw.pad_before},
                                          {ph.pad_after, pw.pad_after}),
          epilogue_attr(residual, act), onednn::cpu_engine());
    } catch (const dnnl::error&) {
      return false;
    }
    int src = p_.as_desc(x, pd.src_desc(), p_.float_dtype());
    // The Keras kernel [KH, KW, C / G, O] seen as oneDNN's (g)oihw.
    memory::desc w_user;
    auto wdt = onednn::to_dnnl(w.dtype());
    if (G == 1) {
      w_user = memory::desc(wdims, wdt, tag::hwio);
    } else {
      const int64_t OG = O / G;
      w_user = memory::desc(wdims, wdt, memory::dims{OG, 1, O, KW * CG * O, CG * O});
    }
    PTensor wt{w.shape(), p_.float_dtype(), pd.weights_desc(), Home::constant};
    wt.constant = weights_.get(n.inputs[1], w, w_user, pd.weights_desc());
    int wid = p_.add_tensor(std::move(wt));
    Shape ys = {N, ph.out, pw.out, O};
    int dst = residual ? destination_for_residual(n.inputs[3], pd.dst_desc(), ys, p_.float_dtype())
                       : p_.new_slot(ys, p_.float_dtype(), pd.dst_desc());
    std::vector<std::pair<int, int>> bind{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wid}, {DNNL_ARG_DST, dst}};
    if (has_bias) bind.push_back({DNNL_ARG_BIAS, bias_tensor(n, O, {O})});
    p_.add_primitive("conv2d", pd, dnnl::convolution_forward(pd), bind, fused || act != Epilogue::none);
    value_[n.outputs[0]] = dst;
    return true;
  }

  // A dense layer's [M, N] result seen with the input's leading dimensions again ([..., N]).
  int unflattened(int dst2d, const Shape& shape) {
    if (t(dst2d).shape == shape) return dst2d;
    aliased_.insert(dst2d);
    return p_.alias(dst2d, shape, plain_desc(shape, t(dst2d).dtype));
  }

  bool linear(const graph::Node& n) {
    if (!constant(n.inputs[1]) || (n.inputs.size() > 2 && !constant(n.inputs[2]))) return false;
    const bool fused = n.call.op() == "fused_linear";
    Epilogue act = fused ? epilogue_from_name(n.call.get_string("activation"))
                         : (n.call.get_string("activation") == "relu" ? Epilogue::relu : Epilogue::none);
    int x = value_[n.inputs[0]];
    const Tensor w = t(value_[n.inputs[1]]).constant;
    const Shape xs = t(x).shape;  // a copy: adding tensors moves them
    if (xs.empty() || w.ndim() != 2 || xs.back() != w.shape()[0] || !is_float(t(x).dtype)) return false;
    const int64_t K = w.shape()[0], Nout = w.shape()[1];
    const int64_t M = numel(xs) / std::max<int64_t>(K, 1);
    const auto dt = onednn::to_dnnl(p_.float_dtype());
    memory::desc src_md({M, K}, dt, tag::ab), w_any({K, Nout}, dt, tag::any), dst_md({M, Nout}, dt, tag::ab);
    const bool has_bias = n.inputs.size() > 2;
    memory::desc bias_md = has_bias ? memory::desc({1, Nout}, memory::data_type::f32, tag::ab) : memory::desc();
    const bool residual = n.inputs.size() > 3;
    dnnl::matmul::primitive_desc pd;
    try {
      pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_any, bias_md, dst_md),
                                        epilogue_attr(residual, act), onednn::cpu_engine());
    } catch (const dnnl::error&) {
      return false;
    }
    int plain = p_.as_plain(x, p_.float_dtype());
    int src = p_.alias(plain, {M, K}, src_md);
    aliased_.insert(plain);
    PTensor wt{w.shape(), p_.float_dtype(), pd.weights_desc(), Home::constant};
    wt.constant = weights_.get(n.inputs[1], w, memory::desc({K, Nout}, onednn::to_dnnl(w.dtype()), tag::ab),
                               pd.weights_desc());
    int wid = p_.add_tensor(std::move(wt));
    Shape ys = xs;
    ys.back() = Nout;
    int dst2d;
    if (residual) {
      int r = p_.as_plain(value_[n.inputs[3]], p_.float_dtype());
      value_[n.inputs[3]] = r;
      int r2d = r;
      if (t(r).shape != Shape{M, Nout}) {
        r2d = p_.alias(r, {M, Nout}, dst_md);
        aliased_.insert(r);
      }
      if (r2d == r && last_read_[n.inputs[3]] == node_ && t(r).home == Home::slot && t(r).alias_of < 0 &&
          !aliased_.count(r) && t(r).desc == dst_md) {
        dst2d = r;
        p_.forget_reorders_of(r);
      } else {
        dst2d = p_.new_slot({M, Nout}, p_.float_dtype(), dst_md);
        auto rpd = dnnl::reorder::primitive_desc(onednn::cpu_engine(), t(r2d).desc, onednn::cpu_engine(), dst_md,
                                                 onednn::default_attr());
        p_.add_primitive("residual copy", rpd, dnnl::reorder(rpd), {{DNNL_ARG_FROM, r2d}, {DNNL_ARG_TO, dst2d}});
      }
    } else {
      dst2d = p_.new_slot({M, Nout}, p_.float_dtype(), dst_md);
    }
    std::vector<std::pair<int, int>> bind{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wid}, {DNNL_ARG_DST, dst2d}};
    if (has_bias) bind.push_back({DNNL_ARG_BIAS, bias_tensor(n, Nout, {1, Nout})});
    p_.add_primitive("linear", pd, dnnl::matmul(pd), bind, fused || act != Epilogue::none);
    value_[n.outputs[0]] = unflattened(dst2d, ys);
    return true;
  }

  bool pool(const graph::Node& n) {
    int x = value_[n.inputs[0]];
    const Shape xs = t(x).shape;  // a copy: adding tensors moves them
    if (xs.size() != 4 || !(is_float(t(x).dtype) || is_int8(t(x).dtype))) return false;
    Pool2dAttrs a = pool2d_options_from(n.call);
    const int64_t N = xs[0], H = xs[1], W = xs[2], C = xs[3];
    int64_t sh = a.strides[0] ? a.strides[0] : a.pool_size[0], sw = a.strides[1] ? a.strides[1] : a.pool_size[1];
    std::string shapes = "x " + shape_str(xs);
    SpatialPlan ph = plan_spatial(H, a.pool_size[0], sh, 1, a.padding, n.call.op().c_str(), shapes);
    SpatialPlan pw = plan_spatial(W, a.pool_size[1], sw, 1, a.padding, n.call.op().c_str(), shapes);
    bool is_max = n.call.op() == "max_pool2d";
    auto alg = is_max ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg_exclude_padding;
    memory::desc dst_any({N, C, ph.out, pw.out}, onednn::to_dnnl(t(x).dtype), tag::any);
    dnnl::pooling_forward::primitive_desc pd;
    try {
      pd = dnnl::pooling_forward::primitive_desc(
          dnnl::pooling_forward::desc(dnnl::prop_kind::forward_inference, alg, t(x).desc, dst_any, {sh, sw},
                                      {a.pool_size[0], a.pool_size[1]}, {ph.pad_before, pw.pad_before},
                                      {ph.pad_after, pw.pad_after}),
          onednn::default_attr(), onednn::cpu_engine());
    } catch (const dnnl::error&) {
      return false;
    }
    int dst = p_.new_slot({N, ph.out, pw.out, C}, t(x).dtype, pd.dst_desc());
    p_.add_primitive(n.call.op(), pd, dnnl::pooling_forward(pd), {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, dst}});
    value_[n.outputs[0]] = dst;
    return true;
  }

  bool reshape(const graph::Node& n) {
    Shape out = concrete(g_.values[n.outputs[0]].shape);
    int x = value_[n.inputs[0]];
    if (numel(out) != numel(t(x).shape)) return false;  // the eager op names the mismatch
    int plain = p_.as_plain(x);
    value_[n.outputs[0]] = p_.alias(plain, out, plain_desc(out, t(plain).dtype));
    aliased_.insert(plain);
    return true;
  }

  bool cast(const graph::Node& n) {
    int x = value_[n.inputs[0]];
    DType to = dtype_from_name(n.call.get_string("dtype"));
    if (!is_float(to)) return false;  // integer casts truncate; oneDNN's reorder rounds
    DType target = p_.float_dtype();
    if (t(x).dtype == target) {
      value_[n.outputs[0]] = x;
      return true;
    }
    value_[n.outputs[0]] = p_.as_plain(x, target);
    return true;
  }

  bool add(const graph::Node& n) {
    int a = value_[n.inputs[0]], b = value_[n.inputs[1]];
    if (t(a).shape != t(b).shape || !is_float(t(a).dtype) || !is_float(t(b).dtype)) return false;
    b = p_.as_desc(b, t(a).desc, t(a).dtype);
    dnnl::primitive_attr attr = onednn::default_attr();
    if (n.call.op() == "add_relu") {
      dnnl::post_ops po;
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      attr.set_post_ops(po);
    }
    dnnl::binary::primitive_desc pd;
    try {
      pd = dnnl::binary::primitive_desc(dnnl::binary::desc(dnnl::algorithm::binary_add, t(a).desc, t(b).desc, t(a).desc),
                                        attr, onednn::cpu_engine());
    } catch (const dnnl::error&) {
      return false;
    }
    int dst = p_.new_slot(t(a).shape, t(a).dtype, t(a).desc);
    p_.add_primitive(n.call.op(), pd, dnnl::binary(pd), {{DNNL_ARG_SRC_0, a}, {DNNL_ARG_SRC_1, b}, {DNNL_ARG_DST, dst}});
    value_[n.outputs[0]] = dst;
    return true;
  }

  bool eltwise(const graph::Node& n) {
    static const std::map<std::string, dnnl::algorithm> kinds = {
        {"relu", dnnl::algorithm::eltwise_relu},         {"gelu_erf", dnnl::algorithm::eltwise_gelu_erf},
        {"gelu_tanh", dnnl::algorithm::eltwise_gelu_tanh}, {"sigmoid", dnnl::algorithm::eltwise_logistic},
        {"tanh", dnnl::algorithm::eltwise_tanh},         {"affine", dnnl::algorithm::eltwise_linear},
        {"elu", dnnl::algorithm::eltwise_elu},           {"abs", dnnl::algorithm::eltwise_abs},
        {"square", dnnl::algorithm::eltwise_square},     {"exp", dnnl::algorithm::eltwise_exp},
        {"swish", dnnl::algorithm::eltwise_swish},       {"clip", dnnl::algorithm::eltwise_clip},
    };
    auto it = kinds.find(n.call.op());
    if (it == kinds.end() || n.inputs.size() != 1) return false;
    int x = value_[n.inputs[0]];
    if (!is_float(t(x).dtype)) return false;
    float alpha = static_cast<float>(n.call.get_float("alpha")), beta = static_cast<float>(n.call.get_float("beta"));
    dnnl::eltwise_forward::primitive_desc pd;
    try {
      pd = dnnl::eltwise_forward::primitive_desc(
          dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, it->second, t(x).desc, alpha, beta),
          onednn::default_attr(), onednn::cpu_engine());
    } catch (const dnnl::error&) {
      return false;
    }
    int dst = p_.new_slot(t(x).shape, t(x).dtype, t(x).desc);
    p_.add_primitive(n.call.op(), pd, dnnl::eltwise_forward(pd), {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, dst}});
    value_[n.outputs[0]] = dst;
    return true;
  }

  // quantize_linear / dequantize_linear: one reorder that keeps the layout and changes the
  // element type, with the scale (and zero point) as reorder attributes.
  bool requantize(const graph::Node& n) {
    int x = value_[n.inputs[0]];
    const bool quantize = n.call.op() == "quantize_linear";
    const float scale = static_cast<float>(n.call.get_float("scale"));
    const int32_t zero_point = static_cast<int32_t>(n.call.get_int("zero_point"));
    if (!(scale > 0.f)) return false;  // the eager op names the problem
    DType to = quantize ? dtype_from_name(n.call.get_string("dtype")) : DType::f32;
    if (quantize ? !is_float(t(x).dtype) || !is_int8(to) : !is_int8(t(x).dtype)) return false;
    dnnl::primitive_attr attr = onednn::default_attr();
    attr.set_output_scales(0, {quantize ? 1.f / scale : scale});
    if (zero_point != 0) attr.set_zero_points(quantize ? DNNL_ARG_DST : DNNL_ARG_SRC, 0, {zero_point});
    memory::desc want = with_dtype(t(x).desc, to);
    dnnl::reorder::primitive_desc pd;
    try {
      pd = dnnl::reorder::primitive_desc(onednn::cpu_engine(), t(x).desc, onednn::cpu_engine(), want, attr);
    } catch (const dnnl::error&) {
      return false;
    }
    int dst = p_.new_slot(t(x).shape, to, want);
    p_.add_primitive(n.call.op(), pd, dnnl::reorder(pd), {{DNNL_ARG_FROM, x}, {DNNL_ARG_TO, dst}});
    value_[n.outputs[0]] = dst;
    return true;
  }

  // The int8 epilogue as oneDNN attributes: per-channel output scales x_scale * w_scale[c]
  // (over out_scale when nothing follows), the residual as a sum post-op in its own int8 type,
  // the activation as an eltwise post-op whose scale divides by out_scale. Bias is added to
  // the s32 accumulator before the output scales, so it is passed divided by x * w scales.
  dnnl::primitive_attr quantized_attr(const QuantizedEpilogue& q, DType residual_dtype, bool residual) {
    const bool act = q.activation != Epilogue::none;
    const float out = q.out_dtype == DType::f32 ? 1.f : q.out_scale;
    std::vector<float> scales;
    for (float w : q.w_scales) scales.push_back(q.x_scale * w / (act ? 1.f : out));
    dnnl::primitive_attr attr = onednn::default_attr();
    attr.set_output_scales(1 << 1, scales);
    dnnl::post_ops po;
    if (residual && q.out_dtype == DType::f32) po.append_sum(1.f);  // dequantized into dst already
    else if (residual) po.append_sum(q.residual_scale / (act ? 1.f : out), onednn::to_dnnl(residual_dtype));
    if (act) po.append_eltwise(1.f / out, epilogue_algorithm(q.activation), 0.f, 0.f);
    attr.set_post_ops(po);
    return attr;
  }

  int quantized_bias(const graph::Node& n, const QuantizedEpilogue& q, const memory::dims& dims) {
    const int64_t channels = static_cast<int64_t>(q.w_scales.size());
    std::vector<float> b(channels, 0.f);
    if (n.inputs.size() > 2) {
      std::vector<float> v = t(value_[n.inputs[2]]).constant.to_vector();
      if (static_cast<int64_t>(v.size()) != channels) return -1;
      for (int64_t c = 0; c < channels; ++c) b[c] = v[c] / (q.x_scale * q.w_scales[c]);
    }
    PTensor bt{{channels}, DType::f32, memory::desc(dims, memory::data_type::f32, dims.size() == 1 ? tag::a : tag::ab),
               Home::constant};
    bt.constant = Tensor::from_vector(b, {channels});
    return p_.add_tensor(std::move(bt));
  }

  // The residual's bytes in the destination's buffer, seen as the residual's own type: the
  // sum post-op reads them in that type, whatever the destination's.
  int quantized_destination(int residual_value, const memory::desc& dst_desc, const Shape& shape, DType out_dtype,
                            float residual_scale) {
    int r = value_[residual_value];
    if (out_dtype == DType::f32) {
      // An f32 destination cannot sum int8 in place: the residual is dequantized into it.
      int dst = p_.new_slot(shape, DType::f32, dst_desc);
      dnnl::primitive_attr attr = onednn::default_attr();
      attr.set_output_scales(0, {residual_scale});
      auto pd = dnnl::reorder::primitive_desc(onednn::cpu_engine(), t(r).desc, onednn::cpu_engine(), dst_desc, attr);
      p_.add_primitive("residual dequantize", pd, dnnl::reorder(pd), {{DNNL_ARG_FROM, r}, {DNNL_ARG_TO, dst}});
      return dst;
    }
    memory::desc as_residual = with_dtype(dst_desc, t(r).dtype);
    int holder = destination_for_residual(residual_value, as_residual, shape, t(r).dtype);
    if (t(holder).dtype == out_dtype) return holder;
    aliased_.insert(holder);
    return p_.alias(holder, shape, dst_desc, out_dtype);
  }

  bool qconv(const graph::Node& n) {
    if (!constant(n.inputs[1]) || (n.inputs.size() > 2 && !constant(n.inputs[2]))) return false;
    Conv2dAttrs a = conv2d_geometry_from(n.call);
    QuantizedEpilogue q = quantized_epilogue_from(n.call);
    int x = value_[n.inputs[0]];
    const Shape xs = t(x).shape;
    const Tensor w = t(value_[n.inputs[1]]).constant;
    if (xs.size() != 4 || w.ndim() != 4 || !is_int8(t(x).dtype) || w.dtype() != DType::s8) return false;
    const int64_t N = xs[0], H = xs[1], W = xs[2], C = xs[3];
    const int64_t KH = w.shape()[0], KW = w.shape()[1], CG = w.shape()[2], O = w.shape()[3], G = a.groups;
    if (G <= 0 || CG * G != C || O % G != 0 || static_cast<int64_t>(q.w_scales.size()) != O) return false;
    std::string shapes = "x " + shape_str(xs) + ", kernel " + shape_str(w.shape());
    SpatialPlan ph = plan_spatial(H, KH, a.strides[0], a.dilation[0], a.padding, "qconv2d", shapes);
    SpatialPlan pw = plan_spatial(W, KW, a.strides[1], a.dilation[1], a.padding, "qconv2d", shapes);
    memory::dims wdims = G == 1 ? memory::dims{O, C, KH, KW} : memory::dims{G, O / G, CG, KH, KW};
    const bool residual = n.inputs.size() > 3;
    DType rdt = residual ? t(value_[n.inputs[3]]).dtype : DType::s8;
    if (residual && !is_int8(rdt)) return false;
    memory::desc src_any({N, C, H, W}, onednn::to_dnnl(t(x).dtype), tag::any),
        w_any(wdims, memory::data_type::s8, tag::any), dst_any({N, O, ph.out, pw.out}, onednn::to_dnnl(q.out_dtype), tag::any),
        bias_md({O}, memory::data_type::f32, tag::a);
    dnnl::convolution_forward::primitive_desc pd;
    try {
      pd = dnnl::convolution_forward::primitive_desc(
          dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_any,
                                          w_any, bias_md, dst_any, {a.strides[0], a.strides[1]},
                                          {a.dilation[0] - 1, a.dilation[1] - 1}, {ph.pad_before, pw.pad_before},
                                          {ph.pad_after, pw.pad_after}),
          quantized_attr(q, rdt, residual), onednn::cpu_engine());
    } catch (const dnnl::error&) {
      return false;
    }
    int bias = quantized_bias(n, q, {O});
    if (bias < 0) return false;
    int src = p_.as_desc(x, pd.src_desc(), t(x).dtype);
    memory::desc w_user = G == 1 ? memory::desc(wdims, memory::data_type::s8, tag::hwio)
                                 : memory::desc(wdims, memory::data_type::s8,
                                                memory::dims{O / G, 1, O, KW * CG * O, CG * O});
    PTensor wt{w.shape(), DType::s8, pd.weights_desc(), Home::constant};
    wt.constant = weights_.get(n.inputs[1], w, w_user, pd.weights_desc());
    int wid = p_.add_tensor(std::move(wt));
    Shape ys = {N, ph.out, pw.out, O};
    int dst = residual ? quantized_destination(n.inputs[3], pd.dst_desc(), ys, q.out_dtype, q.residual_scale)
                       : p_.new_slot(ys, q.out_dtype, pd.dst_desc());
    p_.add_primitive("qconv2d", pd, dnnl::convolution_forward(pd),
                     {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wid}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, dst}}, true);
    value_[n.outputs[0]] = dst;
    return true;
  }

  bool qlinear(const graph::Node& n) {
    if (!constant(n.inputs[1]) || (n.inputs.size() > 2 && !constant(n.inputs[2]))) return false;
    QuantizedEpilogue q = quantized_epilogue_from(n.call);
    int x = value_[n.inputs[0]];
    const Shape xs = t(x).shape;
    const Tensor w = t(value_[n.inputs[1]]).constant;
    if (xs.empty() || w.ndim() != 2 || xs.back() != w.shape()[0] || !is_int8(t(x).dtype) || w.dtype() != DType::s8) {
      return false;
    }
    const int64_t K = w.shape()[0], Nout = w.shape()[1];
    if (static_cast<int64_t>(q.w_scales.size()) != Nout) return false;
    const int64_t M = numel(xs) / std::max<int64_t>(K, 1);
    const bool residual = n.inputs.size() > 3;
    DType rdt = residual ? t(value_[n.inputs[3]]).dtype : DType::s8;
    if (residual && !is_int8(rdt)) return false;
    memory::desc src_md({M, K}, onednn::to_dnnl(t(x).dtype), tag::ab), w_any({K, Nout}, memory::data_type::s8, tag::any),
        dst_md({M, Nout}, onednn::to_dnnl(q.out_dtype), tag::ab), bias_md({1, Nout}, memory::data_type::f32, tag::ab);
    dnnl::matmul::primitive_desc pd;
    try {
      pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_any, bias_md, dst_md), quantized_attr(q, rdt, residual),
                                        onednn::cpu_engine());
    } catch (const dnnl::error&) {
      return false;
    }
    int bias = quantized_bias(n, q, {1, Nout});
    if (bias < 0) return false;
    int plain = p_.as_plain(x);
    int src = p_.alias(plain, {M, K}, src_md);
    aliased_.insert(plain);
    PTensor wt{w.shape(), DType::s8, pd.weights_desc(), Home::constant};
    wt.constant = weights_.get(n.inputs[1], w, memory::desc({K, Nout}, memory::data_type::s8, tag::ab), pd.weights_desc());
    int wid = p_.add_tensor(std::move(wt));
    Shape ys = xs;
    ys.back() = Nout;
    int dst2d;
    if (residual) {
      int r = p_.as_plain(value_[n.inputs[3]]);
      value_[n.inputs[3]] = r;
      if (t(r).shape != Shape{M, Nout}) {
        r = p_.alias(r, {M, Nout}, memory::desc({M, Nout}, onednn::to_dnnl(rdt), tag::ab));
        aliased_.insert(p_.root(r));
        value_[n.inputs[3]] = r;
      }
      dst2d = quantized_destination(n.inputs[3], dst_md, {M, Nout}, q.out_dtype, q.residual_scale);
    } else {
      dst2d = p_.new_slot({M, Nout}, q.out_dtype, dst_md);
    }
    p_.add_primitive("qlinear", pd, dnnl::matmul(pd),
                     {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wid}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, dst2d}}, true);
    value_[n.outputs[0]] = unflattened(dst2d, ys);
    return true;
  }

  bool softmax(const graph::Node& n) {
    int x = value_[n.inputs[0]];
    const Shape xs = t(x).shape;  // a copy: adding tensors moves them
    if (xs.empty() || !is_float(t(x).dtype)) return false;
    int axis = static_cast<int>(n.call.get_int("axis"));
    if (axis < 0) axis += static_cast<int>(xs.size());
    if (axis < 0 || axis >= static_cast<int>(xs.size())) return false;  // the eager op names it
    int plain = p_.as_plain(x);
    // oneDNN's axis counts its own dims: 4-D tensors are {N, C, H, W}.
    int dnnl_axis = xs.size() == 4 ? (axis == 3 ? 1 : axis == 0 ? 0 : axis + 1) : axis;
    const memory::desc md = t(plain).desc;
    dnnl::primitive prim;
    dnnl::primitive_desc_base base;
    try {
      if (n.call.op() == "softmax") {
        auto pd = dnnl::softmax_forward::primitive_desc(
            dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, md, dnnl_axis), onednn::default_attr(),
            onednn::cpu_engine());
        prim = dnnl::softmax_forward(pd);
        base = pd;
      } else {
        auto pd = dnnl::logsoftmax_forward::primitive_desc(
            dnnl::logsoftmax_forward::desc(dnnl::prop_kind::forward_inference, md, dnnl_axis), onednn::default_attr(),
            onednn::cpu_engine());
        prim = dnnl::logsoftmax_forward(pd);
        base = pd;
      }
    } catch (const dnnl::error&) {
      return false;
    }
    int dst = p_.new_slot(xs, t(plain).dtype, md);
    p_.add_primitive(n.call.op(), base, prim, {{DNNL_ARG_SRC, plain}, {DNNL_ARG_DST, dst}});
    value_[n.outputs[0]] = dst;
    return true;
  }

  // A BatchNorm the passes could not fold (after an input or an add): one primitive with the
  // moving statistics, in whatever layout its input has.
  bool batch_norm(const graph::Node& n) {
    for (int j = 1; j < 5; ++j) {
      if (!constant(n.inputs[j])) return false;
    }
    int x = value_[n.inputs[0]];
    const Shape xs = t(x).shape;  // a copy: adding tensors moves them
    if (xs.size() < 2 || !is_float(t(x).dtype)) return false;
    const int64_t C = xs.back();
    memory::desc md = t(x).desc;
    if (xs.size() != 4) {
      // oneDNN normalizes over dim 1: see [..., C] as {rows, C}.
      x = p_.as_plain(x);
      int rows = p_.alias(x, {numel(xs) / C, C}, memory::desc({numel(xs) / C, C}, onednn::to_dnnl(t(x).dtype), tag::ab));
      aliased_.insert(x);
      x = rows;
      md = t(x).desc;
    }
    auto flags = dnnl::normalization_flags::use_global_stats | dnnl::normalization_flags::use_scale |
                 dnnl::normalization_flags::use_shift;
    if (n.call.get_int("relu")) flags = flags | dnnl::normalization_flags::fuse_norm_relu;
    dnnl::batch_normalization_forward::primitive_desc pd;
    try {
      pd = dnnl::batch_normalization_forward::primitive_desc(
          dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_inference, md,
                                                  static_cast<float>(n.call.get_float("epsilon")), flags),
          onednn::default_attr(), onednn::cpu_engine());
    } catch (const dnnl::error&) {
      return false;
    }
    auto param = [&](int j) {
      const Tensor c = t(value_[n.inputs[j]]).constant;
      PTensor pt{{C}, DType::f32, memory::desc({C}, memory::data_type::f32, tag::a), Home::constant};
      pt.constant = (c.dtype() == DType::f32 ? c : kiln::cast(c, DType::f32)).clone_detached();
      return p_.add_tensor(std::move(pt));
    };
    int dst = p_.new_slot(t(x).shape, t(x).dtype, md);
    p_.add_primitive("batch_norm", pd, dnnl::batch_normalization_forward(pd),
                     {{DNNL_ARG_SRC, x}, {DNNL_ARG_SCALE, param(1)}, {DNNL_ARG_SHIFT, param(2)},
                      {DNNL_ARG_MEAN, param(3)}, {DNNL_ARG_VARIANCE, param(4)}, {DNNL_ARG_DST, dst}});
    value_[n.outputs[0]] = xs.size() == 4 ? dst : p_.alias(dst, xs, plain_desc(xs, t(dst).dtype));
    if (xs.size() != 4) aliased_.insert(dst);
    return true;
  }

  // Anything else runs the eager op on Kiln-plain copies of its inputs, in f32 when the plan
  // computes in bf16 (the eager ops mix dtypes only where the model did).
  void fallback(const graph::Node& n) {
    Step s;
    s.kind = "eager " + n.call.op();
    s.call = n.call;
    std::vector<Tensor> probe;
    for (int v : n.inputs) {
      int id = value_[v];
      DType want = t(id).dtype == DType::bf16 ? DType::f32 : t(id).dtype;
      if (g_.values[v].dtype == DType::bf16) want = DType::bf16;
      s.reads.push_back(t(id).home == Home::constant && t(id).desc == plain_desc(t(id).shape, t(id).dtype) && t(id).dtype == want
                            ? id
                            : p_.as_plain(id, want));
      probe.push_back(t(id).home == Home::constant ? t(id).constant : Tensor::zeros(t(id).shape, want));
    }
    // The output shapes and dtypes, from one run on zeros (cheap next to building a plan).
    std::vector<Tensor> outs = ops::run_op(n.call, probe);
    for (size_t j = 0; j < n.outputs.size(); ++j) {
      int o = p_.new_slot(outs[j].shape(), outs[j].dtype(), plain_desc(outs[j].shape(), outs[j].dtype()));
      s.writes.push_back(o);
      value_[n.outputs[j]] = o;
    }
    p_.steps.push_back(std::move(s));
  }

  Plan::Impl& p_;
  const graph::Graph& g_;
  PackedWeights& weights_;
  std::vector<int> value_;
  std::vector<int> last_read_;
  std::set<int> aliased_;
  int64_t batch_ = 1;
  int node_ = 0;
};

// Assigns buffers: a root gets a slot at the first step that touches it and gives it back
// after the last, so values never alive together share memory.
void assign_slots(Plan::Impl& p) {
  const int nt = static_cast<int>(p.tensors.size());
  std::vector<int> first(nt, -1), last(nt, -1);
  std::vector<size_t> bytes(nt, 0);
  for (int i = 0; i < nt; ++i) {
    int r = p.root(i);
    bytes[r] = std::max(bytes[r], p.tensors[i].desc.get_size());
  }
  auto touch = [&](int id, int s) {
    int r = p.root(id);
    if (first[r] < 0) first[r] = s;
    last[r] = s;
  };
  for (int s = 0; s < static_cast<int>(p.steps.size()); ++s) {
    for (auto [arg, id] : p.steps[s].bind) touch(id, s);
    for (int id : p.steps[s].reads) touch(id, s);
    for (int id : p.steps[s].writes) touch(id, s);
  }
  std::vector<std::vector<int>> starts(p.steps.size()), ends(p.steps.size());
  for (int i = 0; i < nt; ++i) {
    if (p.root(i) != i || p.tensors[i].home != Home::slot || first[i] < 0) continue;
    starts[first[i]].push_back(i);
    ends[last[i]].push_back(i);
  }
  std::vector<int> free_slots;
  for (size_t s = 0; s < p.steps.size(); ++s) {
    for (int id : starts[s]) {
      // Best fit among free slots; the largest grows when none fits.
      int best = -1;
      for (size_t k = 0; k < free_slots.size(); ++k) {
        size_t have = p.slot_bytes[free_slots[k]];
        if (have >= bytes[id] && (best < 0 || have < p.slot_bytes[free_slots[best]])) best = static_cast<int>(k);
      }
      if (best < 0 && !free_slots.empty()) {
        best = 0;
        for (size_t k = 1; k < free_slots.size(); ++k) {
          if (p.slot_bytes[free_slots[k]] > p.slot_bytes[free_slots[best]]) best = static_cast<int>(k);
        }
      }
      int slot;
      if (best >= 0) {
        slot = free_slots[best];
        free_slots.erase(free_slots.begin() + best);
        p.slot_bytes[slot] = std::max(p.slot_bytes[slot], bytes[id]);
      } else {
        slot = static_cast<int>(p.slot_bytes.size());
        p.slot_bytes.push_back(bytes[id]);
      }
      p.tensors[id].slot = slot;
    }
    for (int id : ends[s]) free_slots.push_back(p.tensors[id].slot);
  }
}

std::unique_ptr<Workspace> make_workspace(const Plan::Impl& p) {
  auto ws = std::make_unique<Workspace>();
  for (size_t bytes : p.slot_bytes) ws->slots.push_back(Tensor::empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))}, DType::u8));
  const dnnl::engine& engine = onednn::cpu_engine();
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const PTensor& t = p.tensors[i];
    const PTensor& r = p.tensors[p.root(static_cast<int>(i))];
    void* handle = DNNL_MEMORY_NONE;
    if (r.home == Home::constant) handle = r.constant.raw_data();
    else if (r.home == Home::slot && r.slot >= 0) handle = ws->slots[r.slot].raw_data();
    ws->mems.emplace_back(t.desc, engine, handle);
  }
  for (const Step& s : p.steps) {
    std::unordered_map<int, memory> args;
    for (auto [arg, id] : s.bind) args[arg] = ws->mems[id];
    if (s.has_prim && s.scratchpad.get_size() > 0) {
      ws->scratch.push_back(Tensor::empty({static_cast<int64_t>(s.scratchpad.get_size())}, DType::u8));
      args[DNNL_ARG_SCRATCHPAD] = memory(s.scratchpad, engine, ws->scratch.back().raw_data());
    }
    ws->args.push_back(std::move(args));
  }
  return ws;
}

void run_fallback(const Plan::Impl& p, const Step& s, Workspace& ws) {
  std::vector<Tensor> args;
  for (int id : s.reads) {
    const PTensor& t = p.tensors[id];
    if (t.home == Home::constant) {
      args.push_back(t.constant);
    } else {
      args.push_back(Tensor::from_bytes(ws.mems[id].get_data_handle(), t.shape, t.dtype));
    }
  }
  std::vector<Tensor> outs = ops::run_op(s.call, args);
  for (size_t j = 0; j < s.writes.size(); ++j) {
    const PTensor& t = p.tensors[s.writes[j]];
    Tensor dense = outs[j].is_contiguous() ? outs[j] : outs[j].clone_detached();
    if (dense.shape() != t.shape || dense.dtype() != t.dtype) {
      throw std::logic_error("inference: " + s.call.op() + " returned " + dense.describe() + ", the plan expects " +
                             shape_str(t.shape));
    }
    std::memcpy(ws.mems[s.writes[j]].get_data_handle(), dense.raw_data(), dense.nbytes());
  }
}

}  // namespace

Plan::Plan(const graph::Graph& graph, const std::vector<Shape>& input_shapes, PackedWeights& weights,
           const Options& options)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  Builder(*impl_, graph, input_shapes, weights).build();
  assign_slots(*impl_);
  for (size_t i = 0; i < impl_->tensors.size(); ++i) {
    const PTensor& r = impl_->tensors[impl_->root(static_cast<int>(i))];
    if (impl_->tensors[i].alias_of >= 0 && r.home == Home::input) impl_->input_views.push_back({static_cast<int>(i), r.index});
  }
}

Plan::~Plan() = default;

std::vector<Tensor> Plan::run(const std::vector<Tensor>& inputs) const {
  const Impl& p = *impl_;
  std::unique_ptr<Workspace> ws;
  {
    std::lock_guard<std::mutex> lock(p.pool_mu);
    if (!p.pool.empty()) {
      ws = std::move(p.pool.back());
      p.pool.pop_back();
    }
  }
  if (!ws) ws = make_workspace(p);
  for (size_t i = 0; i < inputs.size(); ++i) ws->mems[p.input_tensors[i]].set_data_handle(inputs[i].raw_data());
  std::vector<Tensor> outputs;
  outputs.reserve(p.output_tensors.size());
  for (size_t i = 0; i < p.output_tensors.size(); ++i) {
    outputs.push_back(Tensor::empty(p.output_shapes[i], p.output_dtypes[i]));
    ws->mems[p.output_tensors[i]].set_data_handle(outputs.back().raw_data());
  }
  // Views of an input (a reshape of it) follow the input's handle.
  for (auto [tensor, input] : p.input_views) ws->mems[tensor].set_data_handle(inputs[input].raw_data());
  dnnl::stream& stream = onednn::cpu_stream();
  try {
    for (size_t s = 0; s < p.steps.size(); ++s) {
      const Step& step = p.steps[s];
      if (step.has_prim) {
        step.prim.execute(stream, ws->args[s]);
      } else {
        stream.wait();
        run_fallback(p, step, *ws);
      }
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("InferenceModel: oneDNN execution failed: ") + e.what());
  }
  std::lock_guard<std::mutex> lock(p.pool_mu);
  p.pool.push_back(std::move(ws));
  return outputs;
}

std::string Plan::describe() const {
  std::map<std::string, std::pair<int, int>> counts;
  for (const Step& s : impl_->steps) {
    auto& c = counts[s.kind];
    ++c.first;
    if (s.fused) ++c.second;
  }
  std::string out;
  for (const auto& [kind, c] : counts) {
    if (!out.empty()) out += ", ";
    out += kind + ": " + std::to_string(c.first);
    if (c.second) out += " (" + std::to_string(c.second) + " fused)";
  }
  return out;
}

int Plan::fallback_steps() const {
  int n = 0;
  for (const Step& s : impl_->steps) n += s.has_prim ? 0 : 1;
  return n;
}

}  // namespace kiln::runtime_export
