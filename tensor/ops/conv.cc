#include "tensor/ops/conv.h"

#include <atomic>
#include <chrono>
#include <optional>
#include <unordered_map>
#include <list>
#include <mutex>
#include <stdexcept>

#include "tensor/ops/recorder.h"
#include "tensor/ops/common.h"
#include "tensor/ops/conv_geometry.h"
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

Padding op_padding_from_name(const std::string& name) {
  if (name == "explicit") return Padding::explicit_pads;
  if (name == "valid" || name == "same") return padding_from_name(name);
  throw std::invalid_argument("unknown padding '" + name + "' (expected 'valid', 'same' or 'explicit')");
}

const char* padding_name(Padding padding) {
  switch (padding) {
    case Padding::valid:
      return "valid";
    case Padding::same:
      return "same";
    case Padding::explicit_pads:
      return "explicit";
  }
  return "?";
}

SpatialPlan plan_spatial(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, Padding padding,
                         const char* op, const std::string& shapes, std::array<int64_t, 2> explicit_pads) {
  if (stride <= 0 || dilation <= 0 || kernel <= 0) {
    throw std::invalid_argument(std::string(op) + ": kernel, strides and dilation must be positive (" + shapes + ")");
  }
  // Bounded before any multiplication: oneDNN's kernels index spatial sizes in 32 bits, and a
  // geometry past that (a stride or dilation from a crafted file) must be refused, not wrap.
  auto check_fits = [&](int64_t v, const char* name) {
    if (v > kMaxSpatialExtent) {
      throw std::invalid_argument(std::string(op) + ": " + name + " " + std::to_string(v) + " exceeds " +
                                  std::to_string(kMaxSpatialExtent) + ", the largest spatial extent oneDNN indexes (" +
                                  shapes + ")");
    }
  };
  if (in < 0) throw std::invalid_argument(std::string(op) + ": negative input size " + std::to_string(in) + " (" + shapes + ")");
  check_fits(in, "input size");
  check_fits(kernel, "kernel size");
  check_fits(stride, "stride");
  check_fits(dilation, "dilation");
  // All four are below 2^31 now, so the products below fit int64.
  const int64_t span = (kernel - 1) * dilation + 1;
  check_fits(span, "dilated kernel span");
  SpatialPlan p;
  if (padding == Padding::same) {
    p.out = in / stride + (in % stride != 0);
    int64_t total = std::max<int64_t>((p.out - 1) * stride + span - in, 0);
    p.pad_before = total / 2;
    p.pad_after = total - p.pad_before;
  } else if (padding == Padding::explicit_pads) {
    for (int64_t pad : explicit_pads) {
      if (pad < 0) {
        throw std::invalid_argument(std::string(op) + ": negative padding " + std::to_string(pad) + " (" + shapes + ")");
      }
      check_fits(pad, "padding");
    }
    const int64_t padded = in + explicit_pads[0] + explicit_pads[1];  // each term below 2^31
    check_fits(padded, "padded input size");
    if (padded < span) {
      throw std::invalid_argument(std::string(op) + ": window of " + std::to_string(span) +
                                  " does not fit input size " + std::to_string(in) + " padded by " +
                                  std::to_string(explicit_pads[0]) + " and " + std::to_string(explicit_pads[1]) +
                                  " (" + shapes + ")");
    }
    p.out = (padded - span) / stride + 1;
    p.pad_before = explicit_pads[0];
    p.pad_after = explicit_pads[1];
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

// A convolution's geometry with the dtypes it computes in.
struct ConvPlan : ConvGeometry {
  DType dtype;          // compute dtype: activations, and weights inside oneDNN
  DType weight_dtype;   // the caller's weight tensor (f32 master weights under bf16 compute)

  dnnl::memory::desc src_md() const { return {src_dims(), onednn::to_dnnl(dtype), tag::nhwc}; }
  dnnl::memory::desc dst_md() const { return {dst_dims(), onednn::to_dnnl(dtype), tag::nhwc}; }
  dnnl::memory::desc user_weights_md() const { return ConvGeometry::user_weights_md(weight_dtype); }
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

ConvPlan plan(const Tensor& x, const Tensor& w, const Conv2dAttrs& opt) {
  detail::check_floating(x, "conv2d");
  detail::check_rank(x, 4, "conv2d", "input (NHWC)");
  detail::check_rank(w, 4, "conv2d", "kernel (HWIO)");
  // f32 master weights may feed a bf16 convolution: oneDNN converts them while reordering.
  if (!(w.dtype() == DType::f32 && x.dtype() == DType::bf16)) detail::check_same_dtype(x, w, "conv2d");
  std::string shapes = "input " + x.describe() + ", kernel " + w.describe();
  ConvPlan g;
  static_cast<ConvGeometry&>(g) = conv_geometry(x.shape(), w.shape(), opt, "conv2d", shapes);
  g.dtype = x.dtype();
  g.weight_dtype = w.dtype();
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

std::atomic<ConvAlgorithm> conv_algorithm_setting{ConvAlgorithm::direct};

// Whether g is a convolution oneDNN's Winograd kernels are made for (whether one implements
// it is up to oneDNN: see forward_pd).
bool winograd_shape(const ConvPlan& g) {
  return g.dtype == DType::f32 && g.weight_dtype == DType::f32 && g.groups == 1 && g.kh == 3 && g.kw == 3 &&
         g.strides == dnnl::memory::dims{1, 1} && g.dilates == dnnl::memory::dims{0, 0};
}

// Whether set_conv_algorithm lets g run on Winograd at all.
bool winograd_allowed(const ConvPlan& g) {
  return conv_algorithm_setting.load(std::memory_order_relaxed) != ConvAlgorithm::direct && winograd_shape(g);
}

// What ConvAlgorithm::fastest measured, per geometry and pass.
class MeasuredChoices {
 public:
  std::optional<bool> find(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = winograd_.find(key);
    if (it == winograd_.end()) return std::nullopt;
    return it->second;
  }
  void set(const std::string& key, bool winograd) {
    std::lock_guard<std::mutex> lock(mu_);
    winograd_[key] = winograd;
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, bool> winograd_;
};
MeasuredChoices& measured_choices() {
  static MeasuredChoices* choices = new MeasuredChoices();
  return *choices;
}

// Runs one pass of a convolution, run(winograd), as set_conv_algorithm asks. `fastest` times
// both algorithms on the pass's first call for a geometry (best of three each, activation
// reorders included) and keeps Winograd if it is at least 5% faster; the last run is the
// chosen one, so its outputs stand.
template <typename Run>
void run_pass(const ConvPlan& g, const char* pass, const Run& run) {
  if (!winograd_allowed(g)) return run(false);
  if (conv_algorithm_setting.load(std::memory_order_relaxed) == ConvAlgorithm::winograd) return run(true);
  const std::string key = std::string(pass) + "|" + g.key();
  if (std::optional<bool> chosen = measured_choices().find(key)) return run(*chosen);
  double best[2] = {1e300, 1e300};
  for (int round = 0; round < 3; ++round) {
    for (bool winograd : {false, true}) {
      auto start = std::chrono::steady_clock::now();
      run(winograd);
      std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      best[winograd] = std::min(best[winograd], took.count());
    }
  }
  // Winograd must win clearly: its blocked copies cost memory, and a near tie is noise.
  const bool winograd = best[1] < 0.95 * best[0];
  measured_choices().set(key, winograd);
  run(winograd);
}

// Winograd kernels pick their own (blocked) activation layouts; direct ones run on NHWC.
dnnl::memory::desc any_like(const dnnl::memory::desc& md) { return {md.dims(), md.data_type(), tag::any}; }

// make(algorithm, src_md, dst_md) -> primitive_desc of one pass: with winograd, oneDNN's
// Winograd convolution where it has one for g (its absence throws), else direct on NHWC.
template <typename Make>
auto winograd_or_direct(const ConvPlan& g, bool winograd, const Make& make) {
  if (winograd) {
    try {
      return make(dnnl::algorithm::convolution_winograd, any_like(g.src_md()), any_like(g.dst_md()));
    } catch (const dnnl::error&) {
    }
  }
  return make(dnnl::algorithm::convolution_direct, g.src_md(), g.dst_md());
}

dnnl::convolution_forward::primitive_desc forward_pd(const ConvPlan& g, const dnnl::memory::desc* bias_md,
                                                     detail::ReluFusion relu, bool winograd = false) {
  dnnl::primitive_attr attr = onednn::default_attr();
  if (relu != detail::ReluFusion::none) {
    dnnl::post_ops po;
    detail::append_relu(po, relu);
    attr.set_post_ops(po);
  }
  auto make = [&](dnnl::algorithm alg, const dnnl::memory::desc& src, const dnnl::memory::desc& dst) {
    auto desc = bias_md ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, src,
                                                          g.any_weights_md(), *bias_md, dst, g.strides, g.dilates,
                                                          g.pad_l, g.pad_r)
                        : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, src,
                                                          g.any_weights_md(), dst, g.strides, g.dilates, g.pad_l,
                                                          g.pad_r);
    return dnnl::convolution_forward::primitive_desc(desc, attr, onednn::cpu_engine());
  };
  return winograd_or_direct(g, winograd, make);
}

// An activation in the layout a primitive reads. Winograd primitives want their own blocked
// layout; the copy made for one primitive serves the next that wants the same layout (the
// forward's input for the weight gradient; the output gradient for both backward passes).
struct Relaid {
  Tensor data;
  dnnl::memory::desc md;
};
dnnl::memory activation_in(const Tensor& t, const dnnl::memory::desc& plain, const dnnl::memory::desc& want,
                           Relaid* relaid) {
  if (want == plain) return onednn::memory_of(t, plain);
  if (relaid->data.defined() && relaid->md == want) {
    return dnnl::memory(want, onednn::cpu_engine(), relaid->data.raw_data());
  }
  dnnl::memory m;
  relaid->data = onednn::buffer_for(want, t.dtype(), &m);
  relaid->md = want;
  onednn::reorder("conv2d_activation_reorder", onednn::memory_of(t, plain), m);
  return m;
}
// Where a primitive writes an activation: t itself, or a buffer in its layout that
// activation_out_done then reorders into t.
dnnl::memory activation_out(const Tensor& t, const dnnl::memory::desc& plain, const dnnl::memory::desc& want,
                            Tensor* keep) {
  if (want == plain) return onednn::memory_of(t, plain);
  dnnl::memory m;
  *keep = onednn::buffer_for(want, t.dtype(), &m);
  return m;
}
void activation_out_done(const dnnl::memory& written, const Tensor& t, const dnnl::memory::desc& plain) {
  if (written.get_desc() != plain) onednn::reorder("conv2d_activation_reorder", written, onednn::memory_of(t, plain));
}

dnnl::memory::desc bias_desc(const Tensor& bias) {
  return {{bias.numel()}, onednn::to_dnnl(bias.dtype()), tag::a};
}

Tensor conv_backward_data(const ConvPlan& g, const Tensor& grad, const Tensor& w, Relaid* grad_relaid);
std::vector<Tensor> conv_backward_weights(const ConvPlan& g, const Tensor& x, const Tensor& grad,
                                          const Tensor& w, const Tensor& bias, Relaid* x_relaid,
                                          Relaid* grad_relaid);

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dAttrs& opt) {
  ConvPlan g = plan(x, w, opt);
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
  Relaid src_relaid;
  detail::ReluFusion relu_fusion = detail::ReluFusion::none;
  if (opt.activation == FusedActivation::relu && out.numel() > 0) {
    relu_fusion = detail::choose_relu_fusion(src, wei, bias_d, g.c / g.groups * g.kh * g.kw, out.numel());
    // oneDNN's Winograd kernels take one eltwise post-op, not the NaN-keeping pair: Kiln's
    // own ReLU kernel runs after them instead.
    const bool keep_winograd = winograd_allowed(g) && relu_fusion == detail::ReluFusion::nan_keeping_post_op;
    if (relu_fusion == detail::ReluFusion::unfused || keep_winograd) {
      Conv2dAttrs plain = opt;
      plain.activation = FusedActivation::none;
      return relu(conv2d(x, w, bias, plain));
    }
  }
  if (out.numel() > 0) {
    run_pass(g, "forward", [&](bool winograd) {
      onednn::KeyBuilder key("conv_fwd");
      key.add(g.key()).add(int64_t(relu_fusion)).add(int64_t(winograd));
      if (bias.defined()) key.add(bias_md);
      auto prim = onednn::cached<dnnl::convolution_forward>("conv2d", key, [&] {
        return forward_pd(g, bias.defined() ? &bias_md : nullptr, relu_fusion, winograd);
      });
      Tensor w_ready = weights_cache().get(wei, g.user_weights_md(), prim.pd.weights_desc());
      Tensor out_keep;
      dnnl::memory dst = activation_out(out, g.dst_md(), prim.pd.dst_desc(), &out_keep);
      std::unordered_map<int, dnnl::memory> args{
          {DNNL_ARG_SRC, activation_in(src, g.src_md(), prim.pd.src_desc(), &src_relaid)},
          {DNNL_ARG_WEIGHTS, dnnl::memory(prim.pd.weights_desc(), onednn::cpu_engine(), weights_data(w_ready))},
          {DNNL_ARG_DST, dst}};
      if (bias.defined()) args[DNNL_ARG_BIAS] = onednn::memory_of(bias_d, bias_md);
      onednn::execute("conv2d", prim.primitive, args);
      activation_out_done(dst, out, g.dst_md());
    });
  }
  std::vector<Tensor> inputs{x, w};
  if (bias.defined()) inputs.push_back(bias);
  if (autograd::should_record(inputs)) {
    Tensor y = opt.activation == FusedActivation::relu ? out : Tensor();
    autograd::record(to_attrs(opt), inputs, {out}, [g, x, w, bias, y, src_relaid](const std::vector<Tensor>& grads) {
      Tensor gz = y.defined() ? eltwise_backward(EltwiseKind::relu, grads[0], y) : grads[0];
      // Each backward primitive costs about as much as the forward: run only the wanted ones
      // (the first layer's input, for one, needs no gradient).
      std::vector<Tensor> result(bias.defined() ? 3 : 2);
      Relaid x_relaid = src_relaid, gz_relaid;
      if (autograd::needs_input_grad(0)) result[0] = conv_backward_data(g, gz, w, &gz_relaid);
      if (autograd::needs_input_grad(1) || (bias.defined() && autograd::needs_input_grad(2))) {
        std::vector<Tensor> wb = conv_backward_weights(g, x, gz, w, bias, &x_relaid, &gz_relaid);
        std::copy(wb.begin(), wb.end(), result.begin() + 1);
      }
      return result;
    });
  }
  return out;
}

Tensor depthwise_conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Conv2dAttrs attrs) {
  detail::check_rank(x, 4, "depthwise_conv2d", "input (NHWC)");
  detail::check_rank(w, 4, "depthwise_conv2d", "kernel [KH, KW, C, depth_multiplier]");
  const int64_t c = x.shape()[3];
  if (w.shape()[2] != c) {
    throw std::invalid_argument("depthwise_conv2d: kernel " + w.describe() + " has " + std::to_string(w.shape()[2]) +
                                " input channels, input " + x.describe() + " has " + std::to_string(c));
  }
  if (attrs.groups != 1 && attrs.groups != c) {
    throw std::invalid_argument("depthwise_conv2d: groups=" + std::to_string(attrs.groups) +
                                " (it is the input's channels, " + std::to_string(c) + ")");
  }
  if (c == 0) throw std::invalid_argument("depthwise_conv2d: input " + x.describe() + " has no channels");
  attrs.groups = c;
  const Shape& k = w.shape();
  return conv2d(x, reshape(w, {k[0], k[1], 1, k[2] * k[3]}), bias, attrs);
}

void set_conv_algorithm(ConvAlgorithm algorithm) { conv_algorithm_setting.store(algorithm); }
ConvAlgorithm conv_algorithm() { return conv_algorithm_setting.load(); }

ConvAlgorithm conv_algorithm_from_name(const std::string& name) {
  if (name == "direct") return ConvAlgorithm::direct;
  if (name == "winograd") return ConvAlgorithm::winograd;
  if (name == "fastest") return ConvAlgorithm::fastest;
  throw std::invalid_argument("unknown convolution algorithm '" + name +
                              "' (expected 'direct', 'winograd' or 'fastest')");
}

Tensor pack_conv2d_kernel(const Tensor& w, const Shape& input_shape, const Conv2dAttrs& attrs, DType compute_dtype) {
  if (input_shape.size() != 4) {
    throw std::invalid_argument("pack_conv2d_kernel: input shape " + shape_str(input_shape) + " is not NHWC");
  }
  Shape shape = input_shape;
  if (shape[0] <= 0) shape[0] = 32;  // the batch barely moves oneDNN's choice; any typical one does
  ConvPlan g = plan(Tensor::empty(shape, compute_dtype), w.plain(), attrs);
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

Tensor conv_backward_data(const ConvPlan& g, const Tensor& grad, const Tensor& w, Relaid* grad_relaid) {
  Tensor gd = detail::dense(grad), wei = w.is_packed() ? w : detail::dense(stop_gradient(w));
  Tensor dx = Tensor::empty({g.n, g.h, g.w, g.c}, g.dtype);
  run_pass(g, "backward_data", [&](bool winograd) {
    auto prim = onednn::cached<dnnl::convolution_backward_data>(
        "conv2d_backward_data", onednn::KeyBuilder("conv_bwd_d").add(g.key()).add(int64_t(winograd)), [&] {
          auto make = [&](dnnl::algorithm alg, const dnnl::memory::desc& src, const dnnl::memory::desc& dst) {
            auto desc = dnnl::convolution_backward_data::desc(alg, src, g.any_weights_md(), dst, g.strides, g.dilates,
                                                              g.pad_l, g.pad_r);
            return dnnl::convolution_backward_data::primitive_desc(
                desc, onednn::default_attr(), onednn::cpu_engine(),
                forward_pd(g, nullptr, detail::ReluFusion::none, alg == dnnl::algorithm::convolution_winograd));
          };
          return winograd_or_direct(g, winograd, make);
        });
    Tensor w_ready = weights_cache().get(wei, g.user_weights_md(), prim.pd.weights_desc());
    Tensor dx_keep;
    dnnl::memory diff_src = activation_out(dx, g.src_md(), prim.pd.diff_src_desc(), &dx_keep);
    dnnl::memory weights(prim.pd.weights_desc(), onednn::cpu_engine(), weights_data(w_ready));
    onednn::execute("conv2d_backward_data", prim.primitive,
                    {{DNNL_ARG_DIFF_DST, activation_in(gd, g.dst_md(), prim.pd.diff_dst_desc(), grad_relaid)},
                     {DNNL_ARG_WEIGHTS, weights},
                     {DNNL_ARG_DIFF_SRC, diff_src}});
    activation_out_done(diff_src, dx, g.src_md());
  });
  autograd::record_without_second_order("conv2d_backward_data", {grad, w}, {dx});
  return dx;
}

std::vector<Tensor> conv_backward_weights(const ConvPlan& g, const Tensor& x, const Tensor& grad,
                                          const Tensor& w, const Tensor& bias, Relaid* x_relaid,
                                          Relaid* grad_relaid) {
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
  run_pass(g, "backward_weights", [&](bool winograd) {
    onednn::KeyBuilder key("conv_bwd_w");
    key.add(g.key()).add(int64_t(winograd));
    if (bias.defined()) key.add(db_md);
    auto prim = onednn::cached<dnnl::convolution_backward_weights>("conv2d_backward_weights", key, [&] {
      auto make = [&](dnnl::algorithm alg, const dnnl::memory::desc& src, const dnnl::memory::desc& dst) {
        using desc_t = dnnl::convolution_backward_weights::desc;
        auto desc = bias.defined() ? desc_t(alg, src, g.any_diff_weights_md(), db_md, dst, g.strides, g.dilates,
                                            g.pad_l, g.pad_r)
                                   : desc_t(alg, src, g.any_diff_weights_md(), dst, g.strides, g.dilates, g.pad_l,
                                            g.pad_r);
        dnnl::memory::desc hint_bias = db_md;
        return dnnl::convolution_backward_weights::primitive_desc(
            desc, onednn::default_attr(), onednn::cpu_engine(),
            forward_pd(g, bias.defined() ? &hint_bias : nullptr, detail::ReluFusion::none,
                       alg == dnnl::algorithm::convolution_winograd));
      };
      return winograd_or_direct(g, winograd, make);
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
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, activation_in(src, g.src_md(), prim.pd.src_desc(), x_relaid)},
        {DNNL_ARG_DIFF_DST, activation_in(gd, g.dst_md(), prim.pd.diff_dst_desc(), grad_relaid)},
        {DNNL_ARG_DIFF_WEIGHTS, dw_mem}};
    if (bias.defined()) args[DNNL_ARG_DIFF_BIAS] = onednn::memory_of(db, db_md);
    onednn::execute("conv2d_backward_weights", prim.primitive, args);
    if (!direct) {
      onednn::reorder("weights_reorder", dw_mem, dnnl::memory(dw_target_md, onednn::cpu_engine(), weights_data(dw)));
    }
  });
  std::vector<Tensor> result{dw};
  if (bias.defined()) result.push_back(db);
  autograd::record_without_second_order("conv2d_backward_weights", {x, grad}, result);
  return result;
}

}  // namespace
}  // namespace kiln
