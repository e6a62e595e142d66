#include "runtime_export/plan/builder.h"

#include <stdexcept>

#include "tensor/ops/ops.h"
#include "tensor/ops/registry.h"

namespace kiln::runtime_export::plan_detail {

Builder::Builder(Plan::Impl& p, const graph::Graph& g, const std::vector<Shape>& input_shapes, PackedWeights& weights)
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

Builder::Rule Builder::rule(ops::OpKind kind) {
  using K = ops::OpKind;
  switch (kind) {
    case K::conv2d:
    case K::fused_conv2d:
      return {&Builder::conv, "oneDNN convolution + post-ops"};
    case K::linear:
    case K::fused_linear:
      return {&Builder::linear, "oneDNN matmul + post-ops"};
    case K::max_pool2d:
    case K::avg_pool2d:
      return {&Builder::pool, "oneDNN pooling (f32, bf16, int8)"};
    case K::reshape: return {&Builder::reshape, "a view"};
    case K::permute: return {&Builder::permute, "a strided view"};
    // Without a mask or the causal flag: two oneDNN matmuls reading q, k and v through their
    // strides, k transposed by strides, and a softmax between them.
    case K::scaled_dot_product_attention:
      return {&Builder::attention, "oneDNN matmul, softmax, matmul (no mask, not causal)"};
    case K::cast: return {&Builder::cast, "reorder (float casts)"};
    case K::add:
    case K::add_relu:
    case K::sub:
    case K::mul:
    case K::maximum:
    case K::minimum:
      return {&Builder::binary, "oneDNN binary (same shapes, or the second broadcast into the first)"};
    case K::softmax:
    case K::log_softmax:
      return {&Builder::softmax, "oneDNN softmax"};
    case K::batch_norm_inference: return {&Builder::batch_norm, "oneDNN batch normalization"};
    case K::layer_norm: return {&Builder::layer_norm, "oneDNN layer normalization"};
    // A row copy per index: no oneDNN primitive for it.
    case K::gather: return {nullptr, "eager op"};
    case K::quantize_linear:
    case K::dequantize_linear:
      return {&Builder::requantize, "reorder with scales"};
    case K::qconv2d: return {&Builder::qconv, "int8 oneDNN convolution"};
    case K::qlinear: return {&Builder::qlinear, "int8 oneDNN matmul"};
    case K::relu:
    case K::gelu_tanh:
    case K::gelu_erf:
    case K::sigmoid:
    case K::tanh:
    case K::exp:
    case K::square:
    case K::abs:
    case K::elu:
    case K::swish:
    case K::affine:
    case K::clip:
    case K::relu6:
    case K::hard_swish:
    case K::mish:
      return {&Builder::eltwise, "oneDNN eltwise"};
    case K::hard_sigmoid: return {nullptr, "eager op (Kiln's kernel: oneDNN 2.6 has no hard sigmoid)"};
    // oneDNN 2.6 has these, but nobody measured them against the eager kernels here.
    case K::log:
    case K::sqrt:
    case K::softplus:
    case K::pow:
    case K::div:
    case K::equal:
    case K::greater:
    case K::greater_equal:
    case K::less:
    case K::matmul:
    case K::batch_norm:
    case K::sparse_softmax_cross_entropy:
    KILN_REDUCE_OPS(KILN_OP_CASE)
    case K::argmax:
    case K::one_hot:
    case K::slice:
    case K::contiguous:
    case K::identity:
    case K::broadcast_to:
    case K::concat:
      return {nullptr, "eager op"};
    case K::conv_transpose2d: return {&Builder::conv_transpose, "oneDNN deconvolution"};
    case K::resize2d: return {&Builder::resize, "oneDNN resampling"};
    // A copy with index arithmetic, no oneDNN primitive; a zero pad that feeds a convolution
    // (or a max pool of non-negative values) is folded into its pads before (fold_zero_padding).
    case K::pad: return {nullptr, "eager op (a zero pad before a conv folds into its pads)"};
    // Kiln's broadcasting kernels (oneDNN 2.6 has no select, boolean ops or erf).
    case K::where:
    case K::logical_not:
    case K::logical_and:
    case K::logical_or:
    case K::erf:
      return {nullptr, "eager op (Kiln's kernel: oneDNN 2.6 has no select, boolean op or erf)"};
    KILN_RNN_OPS(KILN_OP_CASE)
    return {&Builder::recurrent, "Kiln's small-batch kernel on weights prepared once (f32; LSTM and GRU up to 256 rows, SimpleRNN up to 8; up to 512 units; no mask, not go_backwards)"};
  }
  throw std::logic_error(std::string("op kind ") + ops::op_kind_name(kind) + " has no decision in the inference plan");
}

void Builder::build() {
  for (size_t k = 0; k < g_.nodes.size(); ++k) {
    node_ = static_cast<int>(k);
    const graph::Node& n = g_.nodes[k];
    Rule r = rule(n.call.kind());
    bool done = r.build && (this->*r.build)(n);
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

Shape Builder::concrete(const Shape& s) const {
  Shape out = s;
  for (int64_t& d : out) {
    if (d == graph::kBatch) d = batch_;
  }
  return out;
}

// The residual of a fused node laid out as the primitive's destination: its own buffer when
// nothing reads it afterwards (the sum post-op then accumulates in place), a copy otherwise.
int Builder::destination_for_residual(int residual_value, const memory::desc& dst_desc, const Shape& shape, DType dtype) {
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

dnnl::primitive_attr Builder::epilogue_attr(bool residual, Epilogue act) {
  dnnl::primitive_attr attr = onednn::default_attr();
  dnnl::post_ops po;
  if (residual) po.append_sum(1.f);
  if (act != Epilogue::none) kiln::detail::append_eltwise_post_ops(po, epilogue_eltwise(act), 0.f, 0.f);
  attr.set_post_ops(po);
  return attr;
}

int Builder::bias_tensor(const graph::Node& n, int64_t channels, const memory::dims& dims) {
  const Tensor b = t(value_[n.inputs[2]]).constant;
  Tensor f = b.dtype() == DType::f32 ? b : kiln::cast(b, DType::f32);
  if (f.numel() != channels) throw std::invalid_argument("inference: bias of " + b.describe() + " for " + std::to_string(channels) + " channels");
  PTensor bt{f.shape(), DType::f32, memory::desc(dims, memory::data_type::f32, dims.size() == 1 ? tag::a : tag::ab),
             Home::constant};
  bt.constant = f.clone_detached();
  return p_.add_tensor(std::move(bt));
}

// Anything else runs the eager op on Kiln-plain copies of its inputs, in f32 when the plan
// computes in bf16 (the eager ops mix dtypes only where the model did).
void Builder::fallback(const graph::Node& n) {
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

}  // namespace kiln::runtime_export::plan_detail

namespace kiln::runtime_export {

ops::Support plan_support(ops::OpKind kind) {
  plan_detail::Builder::Rule r = plan_detail::Builder::rule(kind);
  if (!r.build) return ops::supported("eager op");
  return ops::supported(std::string(r.note) + ", else the eager op");
}

}  // namespace kiln::runtime_export
