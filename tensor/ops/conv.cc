#include "tensor/ops/conv.h"

#include <list>
#include <mutex>
#include <stdexcept>

#include "tensor/ops/recorder.h"
#include "tensor/ops/common.h"
#include "tensor/ops/eltwise.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/packed.h"
#include "tensor/onednn/primitive_cache.h"

namespace kiln {

Padding padding_from_name(const std::string& name) {
  if (name == "valid" || name == "VALID") return Padding::valid;
  if (name == "same" || name == "SAME") return Padding::same;
  throw std::invalid_argument("unknown padding '" + name + "' (expected 'valid' or 'same')");
}

SpatialPlan plan_spatial(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, Padding padding,
                         const char* op, const std::string& shapes) {
  if (stride <= 0 || dilation <= 0 || kernel <= 0) {
    throw std::invalid_argument(std::string(op) + ": kernel, strides and dilation must be positive (" + shapes + ")");
  }
  int64_t span = (kernel - 1) * dilation + 1;
  SpatialPlan p;
  if (padding == Padding::same) {
    p.out = (in + stride - 1) / stride;
    int64_t total = std::max<int64_t>((p.out - 1) * stride + span - in, 0);
    p.pad_before = total / 2;
    p.pad_after = total - p.pad_before;
  } else {
    if (in < span) {
      throw std::invalid_argument(std::string(op) + ": window of " + std::to_string(span) +
                                  " does not fit input size " + std::to_string(in) + " with 'valid' padding (" +
                                  shapes + ")");
    }
    p.out = (in - span) / stride + 1;
  }
  return p;
}

namespace {

using tag = dnnl::memory::format_tag;

struct ConvGeometry {
  int64_t n, h, w, c, kh, kw, o, groups;
  SpatialPlan ph, pw;
  dnnl::memory::dims strides, dilates, pad_l, pad_r;
  DType dtype;          // compute dtype: activations, and weights inside oneDNN
  DType weight_dtype;   // the caller's weight tensor (f32 master weights under bf16 compute)

  dnnl::memory::desc src_md() const { return {{n, c, h, w}, onednn::to_dnnl(dtype), tag::nhwc}; }
  dnnl::memory::desc dst_md() const { return {{n, o, ph.out, pw.out}, onednn::to_dnnl(dtype), tag::nhwc}; }
  dnnl::memory::dims weight_dims() const {
    if (groups == 1) return {o, c, kh, kw};
    return {groups, o / groups, c / groups, kh, kw};
  }
  // The user's HWIO buffer seen through oneDNN's OIHW / GOIHW logical order.
  dnnl::memory::desc user_weights_md() const {
    int64_t cg = c / groups;
    auto dt = onednn::to_dnnl(weight_dtype);
    if (groups == 1) return {weight_dims(), dt, tag::hwio};
    return {weight_dims(), dt, dnnl::memory::dims{o / groups, 1, o, kw * cg * o, cg * o}};
  }
  dnnl::memory::desc any_diff_weights_md() const { return {weight_dims(), onednn::to_dnnl(weight_dtype), tag::any}; }
  dnnl::memory::desc any_weights_md() const { return {weight_dims(), onednn::to_dnnl(dtype), tag::any}; }
  std::string key() const {
    return std::to_string(n) + "," + std::to_string(h) + "," + std::to_string(w) + "," + std::to_string(c) + "|" +
           std::to_string(kh) + "," + std::to_string(kw) + "," + std::to_string(o) + "|g" + std::to_string(groups) +
           "|s" + std::to_string(strides[0]) + "," + std::to_string(strides[1]) + "|d" + std::to_string(dilates[0]) +
           "," + std::to_string(dilates[1]) + "|p" + std::to_string(pad_l[0]) + "," + std::to_string(pad_l[1]) + "," +
           std::to_string(pad_r[0]) + "," + std::to_string(pad_r[1]) + "|" + dtype_name(dtype) + "/" +
           dtype_name(weight_dtype);
  }
};

ConvGeometry plan(const Tensor& x, const Tensor& w, const Conv2dAttrs& opt) {
  detail::check_floating(x, "conv2d");
  detail::check_rank(x, 4, "conv2d", "input (NHWC)");
  detail::check_rank(w, 4, "conv2d", "kernel (HWIO)");
  // f32 master weights may feed a bf16 convolution: oneDNN converts them while reordering.
  if (!(w.dtype() == DType::f32 && x.dtype() == DType::bf16)) detail::check_same_dtype(x, w, "conv2d");
  std::string shapes = "input " + x.describe() + ", kernel " + w.describe();
  ConvGeometry g;
  g.n = x.shape()[0], g.h = x.shape()[1], g.w = x.shape()[2], g.c = x.shape()[3];
  g.kh = w.shape()[0], g.kw = w.shape()[1], g.o = w.shape()[3], g.groups = opt.groups;
  g.dtype = x.dtype();
  g.weight_dtype = w.dtype();
  if (g.groups <= 0 || g.c % g.groups != 0 || g.o % g.groups != 0) {
    throw std::invalid_argument("conv2d: groups=" + std::to_string(opt.groups) +
                                " must divide input and output channels (" + shapes + ")");
  }
  if (w.shape()[2] * g.groups != g.c) {
    throw std::invalid_argument("conv2d: kernel input channels " + std::to_string(w.shape()[2]) + " x groups " +
                                std::to_string(g.groups) + " != input channels " + std::to_string(g.c) + " (" +
                                shapes + ")");
  }
  g.ph = plan_spatial(g.h, g.kh, opt.strides[0], opt.dilation[0], opt.padding, "conv2d", shapes);
  g.pw = plan_spatial(g.w, g.kw, opt.strides[1], opt.dilation[1], opt.padding, "conv2d", shapes);
  g.strides = {opt.strides[0], opt.strides[1]};
  g.dilates = {opt.dilation[0] - 1, opt.dilation[1] - 1};
  g.pad_l = {g.ph.pad_before, g.pw.pad_before};
  g.pad_r = {g.ph.pad_after, g.pw.pad_after};
  return g;
}

// Weights reordered into a primitive's preferred layout, kept per (weight storage, layout):
// reused while the weights are unchanged (inference, a weight used twice in a step), and
// refreshed in place after an optimizer update, so training steps allocate nothing here.
class ReorderedWeightsCache {
 public:
  // `user_md` describes w unless w is packed, whose own layout then applies.
  Tensor get(const Tensor& w, const dnnl::memory::desc& user_md_in, const dnnl::memory::desc& want_md) {
    const dnnl::memory::desc* packed = onednn::blocked_md(w);
    const dnnl::memory::desc& user_md = packed ? *packed : user_md_in;
    if (user_md == want_md) return w;
    std::string want_key = onednn::KeyBuilder("w").add(user_md).add(want_md).str();
    std::lock_guard<std::mutex> lock(mu_);
    Entry* entry = nullptr;
    for (auto it = entries_.begin(); it != entries_.end();) {
      auto storage = it->storage.lock();
      if (!storage) {
        it = entries_.erase(it);  // the weights are gone
        continue;
      }
      if (storage == w.storage() && it->offset == w.offset() && it->key == want_key) {
        entries_.splice(entries_.begin(), entries_, it);
        entry = &entries_.front();
        break;
      }
      ++it;
    }
    if (entry && entry->version == w.storage()->version()) return entry->reordered;
    if (!entry) {
      dnnl::memory unused;
      entries_.push_front({w.storage(), w.offset(), 0, want_key, onednn::buffer_for(want_md, w.dtype(), &unused)});
      entry = &entries_.front();
      if (entries_.size() > kCapacity) entries_.pop_back();
    }
    onednn::reorder("weights_reorder", packed ? onednn::packed_memory_of(w) : onednn::memory_of(w, user_md),
                    dnnl::memory(want_md, onednn::cpu_engine(), entry->reordered.raw_data()));
    entry->version = w.storage()->version();
    return entry->reordered;
  }

 private:
  struct Entry {
    std::weak_ptr<Storage> storage;
    int64_t offset;
    uint64_t version;
    std::string key;
    Tensor reordered;
  };
  static constexpr size_t kCapacity = 256;
  std::mutex mu_;
  std::list<Entry> entries_;
};

ReorderedWeightsCache& weights_cache() {
  static ReorderedWeightsCache* cache = new ReorderedWeightsCache();
  return *cache;
}

// The bytes a primitive reads: a packed kernel's own storage, or the row-major data.
void* weights_data(const Tensor& w) { return w.is_packed() ? w.packed_data() : w.raw_data(); }

// A kernel as the conv ops take it: packed kernels stay packed (the weights cache reads their
// layout), anything else is made row-major.
Tensor kernel_operand(const Tensor& w) { return w.is_packed() ? w : detail::dense(w); }

dnnl::convolution_forward::primitive_desc forward_pd(const ConvGeometry& g, const dnnl::memory::desc* bias_md,
                                                     detail::ReluFusion relu) {
  dnnl::primitive_attr attr = onednn::default_attr();
  if (relu != detail::ReluFusion::none) {
    dnnl::post_ops po;
    detail::append_relu(po, relu);
    attr.set_post_ops(po);
  }
  auto desc = bias_md ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                        dnnl::algorithm::convolution_direct, g.src_md(),
                                                        g.any_weights_md(), *bias_md, g.dst_md(), g.strides,
                                                        g.dilates, g.pad_l, g.pad_r)
                      : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                        dnnl::algorithm::convolution_direct, g.src_md(),
                                                        g.any_weights_md(), g.dst_md(), g.strides, g.dilates,
                                                        g.pad_l, g.pad_r);
  return dnnl::convolution_forward::primitive_desc(desc, attr, onednn::cpu_engine());
}

dnnl::memory::desc bias_desc(const Tensor& bias) {
  return {{bias.numel()}, onednn::to_dnnl(bias.dtype()), tag::a};
}

Tensor conv_backward_data(const ConvGeometry& g, const Tensor& grad, const Tensor& w);
std::vector<Tensor> conv_backward_weights(const ConvGeometry& g, const Tensor& x, const Tensor& grad,
                                          const Tensor& w, const Tensor& bias);

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dAttrs& opt) {
  ConvGeometry g = plan(x, w, opt);
  Tensor bias_d;
  dnnl::memory::desc bias_md;
  if (bias.defined()) {
    detail::check_floating(bias, "conv2d");
    if (bias.ndim() != 1 || bias.numel() != g.o) {
      throw std::invalid_argument("conv2d: bias " + bias.describe() + " does not match " + std::to_string(g.o) +
                                  " output channels of kernel " + w.describe());
    }
    bias_d = detail::dense(bias);
    bias_md = bias_desc(bias_d);
  }
  Tensor src = detail::dense(x), wei = kernel_operand(w);
  Tensor out = Tensor::empty({g.n, g.ph.out, g.pw.out, g.o}, x.dtype());
  detail::ReluFusion relu_fusion = detail::ReluFusion::none;
  if (opt.activation == FusedActivation::relu && out.numel() > 0) {
    relu_fusion = detail::choose_relu_fusion(src, wei, bias_d, g.c / g.groups * g.kh * g.kw, out.numel());
    if (relu_fusion == detail::ReluFusion::unfused) {
      Conv2dAttrs plain = opt;
      plain.activation = FusedActivation::none;
      return relu(conv2d(x, w, bias, plain));
    }
  }
  if (out.numel() > 0) {
    onednn::KeyBuilder key("conv_fwd");
    key.add(g.key()).add(int64_t(relu_fusion));
    if (bias.defined()) key.add(bias_md);
    auto prim = onednn::cached<dnnl::convolution_forward>("conv2d", key, [&] {
      return forward_pd(g, bias.defined() ? &bias_md : nullptr, relu_fusion);
    });
    Tensor w_ready = weights_cache().get(wei, g.user_weights_md(), prim.pd.weights_desc());
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, onednn::memory_of(src, g.src_md())},
        {DNNL_ARG_WEIGHTS, dnnl::memory(prim.pd.weights_desc(), onednn::cpu_engine(), weights_data(w_ready))},
        {DNNL_ARG_DST, onednn::memory_of(out, g.dst_md())}};
    if (bias.defined()) args[DNNL_ARG_BIAS] = onednn::memory_of(bias_d, bias_md);
    onednn::execute("conv2d", prim.primitive, args);
  }
  std::vector<Tensor> inputs{x, w};
  if (bias.defined()) inputs.push_back(bias);
  if (autograd::should_record(inputs)) {
    Tensor y = opt.activation == FusedActivation::relu ? out : Tensor();
    autograd::record(to_attrs(opt), inputs, {out}, [g, x, w, bias, y](const std::vector<Tensor>& grads) {
      Tensor gz = y.defined() ? eltwise_backward(EltwiseKind::relu, grads[0], y) : grads[0];
      // Each backward primitive costs about as much as the forward: run only the wanted ones
      // (the first layer's input, for one, needs no gradient).
      std::vector<Tensor> result(bias.defined() ? 3 : 2);
      if (autograd::needs_input_grad(0)) result[0] = conv_backward_data(g, gz, w);
      if (autograd::needs_input_grad(1) || (bias.defined() && autograd::needs_input_grad(2))) {
        std::vector<Tensor> wb = conv_backward_weights(g, x, gz, w, bias);
        std::copy(wb.begin(), wb.end(), result.begin() + 1);
      }
      return result;
    });
  }
  return out;
}

Tensor pack_conv2d_kernel(const Tensor& w, const Shape& input_shape, const Conv2dAttrs& attrs, DType compute_dtype) {
  if (input_shape.size() != 4) {
    throw std::invalid_argument("pack_conv2d_kernel: input shape " + shape_str(input_shape) + " is not NHWC");
  }
  Shape shape = input_shape;
  if (shape[0] <= 0) shape[0] = 32;  // the batch barely moves oneDNN's choice; any typical one does
  ConvGeometry g = plan(Tensor::empty(shape, compute_dtype), w.plain(), attrs);
  auto fwd = forward_pd(g, nullptr, detail::ReluFusion::none);
  dnnl::memory::desc blocked = fwd.weights_desc();
  // The master weights keep the compute kernel's blocking in their own dtype, so a bf16 step
  // converts them with a plain elementwise reorder.
  dnnl_memory_desc_t d = blocked.data;
  d.data_type = static_cast<dnnl_data_type_t>(onednn::to_dnnl(w.dtype()));
  dnnl::memory::desc master(d);
  if (master == g.user_weights_md()) return w;  // oneDNN runs this kernel on HWIO already
  return onednn::pack(w, master, g.user_weights_md());
}

namespace {

Tensor conv_backward_data(const ConvGeometry& g, const Tensor& grad, const Tensor& w) {
  Tensor gd = detail::dense(grad), wei = w.is_packed() ? w : detail::dense(stop_gradient(w));
  Tensor dx = Tensor::empty({g.n, g.h, g.w, g.c}, g.dtype);
  auto prim = onednn::cached<dnnl::convolution_backward_data>("conv2d_backward_data",
                                                              onednn::KeyBuilder("conv_bwd_d").add(g.key()), [&] {
    auto desc = dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, g.src_md(),
                                                      g.any_weights_md(), g.dst_md(), g.strides, g.dilates, g.pad_l,
                                                      g.pad_r);
    return dnnl::convolution_backward_data::primitive_desc(desc, onednn::default_attr(), onednn::cpu_engine(),
                                                           forward_pd(g, nullptr, detail::ReluFusion::none));
  });
  Tensor w_ready = weights_cache().get(wei, g.user_weights_md(), prim.pd.weights_desc());
  onednn::execute("conv2d_backward_data", prim.primitive,
                  {{DNNL_ARG_DIFF_DST, onednn::memory_of(gd, g.dst_md())},
                   {DNNL_ARG_WEIGHTS, dnnl::memory(prim.pd.weights_desc(), onednn::cpu_engine(), weights_data(w_ready))},
                   {DNNL_ARG_DIFF_SRC, onednn::memory_of(dx, g.src_md())}});
  autograd::record_without_second_order("conv2d_backward_data", {grad, w}, {dx});
  return dx;
}

std::vector<Tensor> conv_backward_weights(const ConvGeometry& g, const Tensor& x, const Tensor& grad,
                                          const Tensor& w, const Tensor& bias) {
  Tensor gd = detail::dense(grad), src = detail::dense(stop_gradient(x));
  // A packed kernel gets its gradient in its own layout, so the optimizer updates it in place.
  const dnnl::memory::desc* packed = onednn::blocked_md(w);
  Tensor dw = packed ? Tensor::empty_packed(w.shape(), w.dtype(), w.packed_layout()) : Tensor::empty(w.shape(), w.dtype());
  const dnnl::memory::desc dw_target_md = packed ? *packed : g.user_weights_md();
  Tensor db;
  dnnl::memory::desc db_md;
  if (bias.defined()) {
    db = Tensor::empty(bias.shape(), bias.dtype());
    db_md = bias_desc(db);
  }
  onednn::KeyBuilder key("conv_bwd_w");
  key.add(g.key());
  if (bias.defined()) key.add(db_md);
  auto prim = onednn::cached<dnnl::convolution_backward_weights>("conv2d_backward_weights", key, [&] {
    auto desc = bias.defined()
                    ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, g.src_md(),
                                                               g.any_diff_weights_md(), db_md, g.dst_md(), g.strides,
                                                               g.dilates, g.pad_l, g.pad_r)
                    : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, g.src_md(),
                                                               g.any_diff_weights_md(), g.dst_md(), g.strides,
                                                               g.dilates, g.pad_l, g.pad_r);
    dnnl::memory::desc hint_bias = db_md;
    return dnnl::convolution_backward_weights::primitive_desc(
        desc, onednn::default_attr(), onednn::cpu_engine(), forward_pd(g, bias.defined() ? &hint_bias : nullptr, detail::ReluFusion::none));
  });
  dnnl::memory::desc dw_md = prim.pd.query_md(dnnl::query::diff_weights_md, 0);
  dnnl::memory dw_mem;
  Tensor dw_buf;
  bool direct = dw_md == dw_target_md;
  if (direct) {
    dw_mem = dnnl::memory(dw_md, onednn::cpu_engine(), weights_data(dw));
  } else {
    dw_buf = onednn::buffer_for(dw_md, w.dtype(), &dw_mem);
  }
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, onednn::memory_of(src, g.src_md())},
                                             {DNNL_ARG_DIFF_DST, onednn::memory_of(gd, g.dst_md())},
                                             {DNNL_ARG_DIFF_WEIGHTS, dw_mem}};
  if (bias.defined()) args[DNNL_ARG_DIFF_BIAS] = onednn::memory_of(db, db_md);
  onednn::execute("conv2d_backward_weights", prim.primitive, args);
  if (!direct) {
    onednn::reorder("weights_reorder", dw_mem, dnnl::memory(dw_target_md, onednn::cpu_engine(), weights_data(dw)));
  }
  std::vector<Tensor> result{dw};
  if (bias.defined()) result.push_back(db);
  autograd::record_without_second_order("conv2d_backward_weights", {x, grad}, result);
  return result;
}

}  // namespace
}  // namespace kiln
