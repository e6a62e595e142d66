#include "nn/layers/multi_head_attention.h"

#include <atomic>
#include <cmath>
#include <stdexcept>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"

namespace kiln::nn {
namespace {

using base::Json;

// What multi_head_attention() asks of the call it makes through the layer (a layer call
// carries tensors only): Keras's per-call use_causal_mask and return_attention_scores.
struct CallRequest {
  bool use_causal_mask = false;
  bool return_attention_scores = false;
  Tensor scores;  // filled by the call
};
thread_local CallRequest* t_request = nullptr;

int64_t product(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i) p *= s[i];
  return p;
}

class MultiHeadAttentionImpl : public LayerImpl {
 public:
  MultiHeadAttentionImpl(int64_t num_heads, int64_t key_dim, const MultiHeadAttentionOptions& opt,
                         const std::string& name)
      : LayerImpl("multi_head_attention", name),
        heads_(num_heads),
        key_dim_(key_dim),
        value_dim_(opt.value_dim ? *opt.value_dim : key_dim),
        opt_(opt),
        seed_(opt.seed ? opt.seed : next_global_seed()) {
    auto fail = [](const std::string& what) { throw std::invalid_argument("MultiHeadAttention: " + what); };
    if (num_heads <= 0) fail("num_heads must be a positive integer, got " + std::to_string(num_heads));
    if (key_dim <= 0) fail("key_dim must be a positive integer, got " + std::to_string(key_dim));
    if (value_dim_ <= 0) fail("value_dim must be a positive integer, got " + std::to_string(value_dim_));
    if (!(opt.dropout >= 0.f && opt.dropout < 1.f)) fail("dropout must be in [0, 1), got " + std::to_string(opt.dropout));
    for (int64_t d : opt.output_shape) {
      if (d <= 0) fail("output_shape must hold positive sizes");
    }
  }

  int num_inputs() const override { return -1; }
  std::string class_name() const override { return "MultiHeadAttention"; }
  bool supports_masking() const override { return true; }  // the output carries the query's mask

  void build(const std::vector<Shape>& shapes) override {
    check_input_count(shapes.size());
    const Shape &q = shapes[0], &v = shapes[1];
    const Shape& k = shapes.size() > 2 ? shapes[2] : v;
    if (q.size() < 3 || v.size() != q.size() || k.size() != q.size()) {
      throw std::invalid_argument("layer '" + name() + "' (MultiHeadAttention) needs query, value and key of one rank >= 3, got " +
                                  shape_str(q) + ", " + shape_str(v) + ", " + shape_str(k));
    }
    if (!std::equal(v.begin() + 1, v.end() - 1, k.begin() + 1)) {
      throw std::invalid_argument("layer '" + name() + "' (MultiHeadAttention): all dimensions of value " + shape_str(v) +
                                  " and key " + shape_str(k) + ", except the last one, must be equal");
    }
    check_attention_axes(static_cast<int>(q.size()));
    const int64_t d_out = opt_.output_shape.empty() ? q.back() : 0;
    Shape out_tail = opt_.output_shape.empty() ? Shape{d_out} : Shape(opt_.output_shape.begin(), opt_.output_shape.end());
    q_kernel_ = add_weight("query/kernel", {q.back(), heads_, key_dim_}, opt_.kernel_initializer);
    if (opt_.use_bias) q_bias_ = add_weight("query/bias", {heads_, key_dim_}, opt_.bias_initializer);
    k_kernel_ = add_weight("key/kernel", {k.back(), heads_, key_dim_}, opt_.kernel_initializer);
    if (opt_.use_bias) k_bias_ = add_weight("key/bias", {heads_, key_dim_}, opt_.bias_initializer);
    v_kernel_ = add_weight("value/kernel", {v.back(), heads_, value_dim_}, opt_.kernel_initializer);
    if (opt_.use_bias) v_bias_ = add_weight("value/bias", {heads_, value_dim_}, opt_.bias_initializer);
    Shape o_shape{heads_, value_dim_};
    o_shape.insert(o_shape.end(), out_tail.begin(), out_tail.end());
    o_kernel_ = add_weight("attention_output/kernel", o_shape, opt_.kernel_initializer);
    if (opt_.use_bias) o_bias_ = add_weight("attention_output/bias", out_tail, opt_.bias_initializer);
  }

  Tensor call(const std::vector<Tensor>& in, bool training) override { return call_with_mask(in, {}, training); }

  Tensor call_with_mask(const std::vector<Tensor>& in, const std::vector<Tensor>& masks, bool training) override {
    check_input_count(in.size());
    auto mask_of = [&](size_t i) { return i < masks.size() ? masks[i] : Tensor(); };
    const Tensor& query = in[0];
    const Tensor& value = in[1];
    const Tensor& key = in.size() > 2 ? in[2] : in[1];
    // Keras ignores the key's mask when the key is the value.
    Tensor key_mask = in.size() > 2 && in[2].impl_ptr() != in[1].impl_ptr() ? mask_of(2) : Tensor();
    Tensor attention_mask = in.size() > 3 ? in[3] : Tensor();
    const bool causal = t_request ? t_request->use_causal_mask : opt_.use_causal_mask;
    const bool want_scores = t_request && t_request->return_attention_scores;
    return attend(query, value, key, attention_mask, mask_of(0), mask_of(1), key_mask, causal, want_scores, training);
  }

  Config config() const override {
    Config c = LayerImpl::config();
    c.set("num_heads", heads_);
    c.set("key_dim", key_dim_);
    c.set("value_dim", value_dim_);
    c.set("dropout", opt_.dropout);
    c.set("use_bias", opt_.use_bias);
    c.set("use_gate", false);
    Json out = nullptr;
    if (!opt_.output_shape.empty()) {
      out = Json::list();
      for (int64_t d : opt_.output_shape) out.push_back(d);
    }
    c.set("output_shape", out);
    Json axes = nullptr;
    if (!opt_.attention_axes.empty()) {
      axes = Json::list();
      for (int a : opt_.attention_axes) axes.push_back(a);
    }
    c.set("attention_axes", axes);
    c.set("sliding_window", nullptr);
    c.set("kernel_initializer", opt_.kernel_initializer);
    c.set("bias_initializer", opt_.bias_initializer);
    for (const char* k : {"kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                          "bias_constraint"}) {
      c.set(k, nullptr);
    }
    c.set("seed", static_cast<int64_t>(seed_));
    c.set("use_causal_mask", opt_.use_causal_mask);
    return c;
  }

  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.size() < 2 || in.size() > 4 || in[0].empty()) return std::nullopt;
    Shape out(in[0].begin(), in[0].end() - 1);
    if (opt_.output_shape.empty()) {
      out.push_back(in[0].back());
    } else {
      out.insert(out.end(), opt_.output_shape.begin(), opt_.output_shape.end());
    }
    return out;
  }

  double compute_cost(const std::vector<Shape>& in) const override {
    if (in.size() < 2 || in[0].size() < 3) return LayerImpl::compute_cost(in);
    const Shape &q = in[0], &v = in[1];
    double b = static_cast<double>(q[0]), t = static_cast<double>(product(q, 1, q.size() - 1)),
           s = static_cast<double>(product(v, 1, v.size() - 1));
    double hk = static_cast<double>(heads_ * key_dim_), hv = static_cast<double>(heads_ * value_dim_);
    double projections = b * (t * q.back() * hk + s * v.back() * (hk + hv) + t * hv * q.back());
    return projections + b * t * s * (hk + hv);
  }

 private:
  void check_input_count(size_t n) const {
    if (n < 2 || n > 4) {
      throw std::invalid_argument("layer '" + name() + "' (MultiHeadAttention) takes [query, value], [query, value, key] "
                                  "or [query, value, key, attention_mask], got " + std::to_string(n) + " inputs");
    }
  }

  // attention_axes must be None's axes: 1 .. rank - 2.
  void check_attention_axes(int rank) const {
    if (opt_.attention_axes.empty()) return;
    std::vector<int> want, got;
    for (int a = 1; a < rank - 1; ++a) want.push_back(a);
    for (int a : opt_.attention_axes) got.push_back(a < 0 ? a + rank - 1 : a);
    if (got != want) {
      throw std::invalid_argument("layer '" + name() + "' (MultiHeadAttention): attention_axes other than every axis "
                                  "between batch and features (here 1.." + std::to_string(rank - 2) +
                                  ") are not implemented in Kiln");
    }
  }

  // x [B, ..., F] @ kernel [F, H, d] + bias [H, d], as [B, H, L, d] (L the middle axes).
  Tensor project(const Tensor& x, const Variable& kernel, const Variable& bias, int64_t d) const {
    const int64_t f = x.shape().back(), b = x.shape()[0], l = product(x.shape(), 1, x.ndim() - 1);
    if (f != kernel.shape()[0]) {
      throw std::invalid_argument("layer '" + name() + "' (MultiHeadAttention) was built for inputs with last dimension " +
                                  std::to_string(kernel.shape()[0]) + " but got " + x.describe());
    }
    Tensor w = reshape(compute_value(kernel), {f, heads_ * d});
    Tensor bias_flat = opt_.use_bias ? reshape(bias.value(), {heads_ * d}) : Tensor();
    Tensor y = linear(reshape(x, {b, l, f}), w, bias_flat);
    return permute(reshape(y, {b, l, heads_, d}), {0, 2, 1, 3});
  }

  // The boolean mask [B, 1, T, S] (or undefined) from Keras's sources of masking, as
  // _compute_attention_mask combines them (the causal part goes to the op as its flag).
  Tensor combined_mask(const Tensor& attention_mask, const Tensor& query_mask, const Tensor& value_mask,
                       const Tensor& key_mask, int64_t b, int64_t t, int64_t s, DType dt) const {
    Tensor m;
    auto combine = [&](const Tensor& part) { m = m.defined() ? m * part : part; };
    if (query_mask.defined()) combine(reshape(cast(query_mask, dt), {b, t, 1}));
    if (value_mask.defined()) combine(reshape(cast(value_mask, dt), {b, 1, s}));
    if (key_mask.defined()) combine(reshape(cast(key_mask, dt), {b, 1, s}));
    if (attention_mask.defined()) {
      if (attention_mask.numel() != b * t * s) {
        throw std::invalid_argument("layer '" + name() + "' (MultiHeadAttention): attention_mask " +
                                    attention_mask.describe() + " does not match [B, T, S] = [" + std::to_string(b) + ", " +
                                    std::to_string(t) + ", " + std::to_string(s) + "]");
      }
      // Any nonzero attends, as Keras's cast to bool reads it.
      Tensor am = attention_mask.dtype() == dt ? attention_mask : cast(attention_mask, dt);
      combine(cast(greater(abs(reshape(am, {b, t, s})), Tensor::scalar(0.f, dt)), dt));
    }
    return m.defined() ? reshape(m, {m.shape()[0], 1, m.shape()[1], m.shape()[2]}) : m;
  }

  Tensor attend(const Tensor& query, const Tensor& value, const Tensor& key, const Tensor& attention_mask,
                const Tensor& query_mask, const Tensor& value_mask, const Tensor& key_mask, bool causal,
                bool want_scores, bool training) {
    if (query.ndim() < 3 || value.ndim() != query.ndim() || key.ndim() != query.ndim()) {
      throw std::invalid_argument("layer '" + name() + "' (MultiHeadAttention) needs query, value and key of one rank >= 3, got " +
                                  query.describe() + ", " + value.describe() + ", " + key.describe());
    }
    if (causal && query.ndim() > 3) {
      throw std::invalid_argument("layer '" + name() + "' (MultiHeadAttention): use_causal_mask needs rank-3 inputs, got " +
                                  query.describe());
    }
    const int64_t b = query.shape()[0], t = product(query.shape(), 1, query.ndim() - 1),
                  s = product(value.shape(), 1, value.ndim() - 1);
    Tensor q = project(query, q_kernel_, q_bias_, key_dim_);
    Tensor k = project(key, k_kernel_, k_bias_, key_dim_);
    Tensor v = project(value, v_kernel_, v_bias_, value_dim_);
    Tensor mask = combined_mask(attention_mask, query_mask, value_mask, key_mask, b, t, s, q.dtype());
    AttentionOptions o{.scale = 1.0 / std::sqrt(static_cast<double>(key_dim_)), .causal = causal};
    if (training && opt_.dropout > 0.f) {
      o.dropout_rate = opt_.dropout;
      o.dropout_seed = dropout_call_seed(seed_, own_calls_);
    }
    Tensor heads;
    if (want_scores) {
      // Keras's unfused path, which also gives the weights.
      Tensor scores = matmul(q, transpose(k)) * Tensor::scalar(static_cast<float>(*o.scale), q.dtype());
      Tensor keep = mask;
      if (causal) {
        Tensor tri = Tensor::zeros({t, s}, q.dtype() == DType::bf16 ? DType::f32 : q.dtype());
        for (int64_t i = 0; i < t; ++i) {
          for (int64_t j = 0; j <= i && j < s; ++j) tri.data<float>()[i * s + j] = 1.f;
        }
        tri = cast(tri, q.dtype());
        keep = keep.defined() ? keep * tri : tri;
      }
      Tensor kept;
      if (keep.defined()) {
        kept = cast(greater(keep, Tensor::scalar(0.5f, keep.dtype())), q.dtype());
        scores = scores * kept + (kept - Tensor::scalar(1.f, q.dtype())) * Tensor::scalar(1e9f, q.dtype());
      }
      // Keras's masked Softmax: masked weights are 0, a query with no key left too.
      Tensor weights = kept.defined() ? softmax(scores, -1) * kept : softmax(scores, -1);
      if (t_request) {
        // Keras's shape: [B, H, query's middle axes..., value's middle axes...].
        Shape scores_shape{b, heads_};
        scores_shape.insert(scores_shape.end(), query.shape().begin() + 1, query.shape().end() - 1);
        scores_shape.insert(scores_shape.end(), value.shape().begin() + 1, value.shape().end() - 1);
        t_request->scores = scores_shape == weights.shape() ? weights : reshape(weights, scores_shape);
      }
      Tensor used = weights;
      if (o.dropout_rate > 0.f) {
        Tensor draws = random_uniform(weights.shape(), 0.f, 1.f, o.dropout_seed);
        Tensor kept = cast(greater_equal(draws, Tensor::scalar(o.dropout_rate)), q.dtype());
        used = weights * kept * Tensor::scalar(1.f / (1.f - o.dropout_rate), q.dtype());
      }
      heads = matmul(used, v);
    } else {
      heads = scaled_dot_product_attention(q, k, v, mask, o);
    }
    // [B, H, T, dv] -> [B, T, H * dv] @ [H * dv, *output_shape]
    Tensor merged = reshape(permute(heads, {0, 2, 1, 3}), {b, t, heads_ * value_dim_});
    const int64_t out_features = numel(o_kernel_.shape()) / (heads_ * value_dim_);
    Tensor w = reshape(compute_value(o_kernel_), {heads_ * value_dim_, out_features});
    Tensor bias = opt_.use_bias ? reshape(o_bias_.value(), {out_features}) : Tensor();
    Tensor y = linear(merged, w, bias);
    Shape out_shape(query.shape().begin(), query.shape().end() - 1);
    if (opt_.output_shape.empty()) {
      out_shape.push_back(out_features);
    } else {
      out_shape.insert(out_shape.end(), opt_.output_shape.begin(), opt_.output_shape.end());
    }
    return y.shape() == out_shape ? y : reshape(y, out_shape);
  }

  int64_t heads_, key_dim_, value_dim_;
  MultiHeadAttentionOptions opt_;
  uint64_t seed_;
  std::atomic<int64_t> own_calls_{0};
  Variable q_kernel_, q_bias_, k_kernel_, k_bias_, v_kernel_, v_bias_, o_kernel_, o_bias_;
};

std::vector<int64_t> read_int_list(ConfigReader& r, const std::string& key, int64_t lo, int64_t hi) {
  std::vector<int64_t> out;
  const Json* j = r.optional(key);
  if (!j) return out;
  if (j->kind() == Json::Kind::integer) {
    out.push_back(j->as_int());
  } else {
    if (!j->is_list()) r.fail(key, "must be null, an integer or a list of integers");
    for (const Json& x : j->items()) {
      if (x.kind() != Json::Kind::integer) r.fail(key, "must be null, an integer or a list of integers");
      out.push_back(x.as_int());
    }
  }
  for (int64_t x : out) {
    if (x < lo || x > hi) r.fail(key, "holds " + std::to_string(x) + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return out;
}

Layer from_config(const Config& config) {
  ConfigReader r(config, "MultiHeadAttention config");
  BaseLayerConfig base = read_base_config(r);
  int64_t heads = r.integer("num_heads", 1, kMaxConfigSize);
  int64_t key_dim = r.integer("key_dim", 1, kMaxConfigSize);
  MultiHeadAttentionOptions opt;
  if (const Json* v = r.optional("value_dim")) {
    if (v->kind() != Json::Kind::integer || v->as_int() < 1 || v->as_int() > kMaxConfigSize) r.fail("value_dim", "must be null or a positive integer");
    opt.value_dim = v->as_int();
  }
  opt.dropout = r.real("dropout", 0.f);
  if (!(opt.dropout >= 0.f && opt.dropout < 1.f)) r.fail("dropout", "must be in [0, 1)");
  opt.use_bias = r.boolean("use_bias", true);
  if (r.boolean("use_gate", false)) r.fail("use_gate", "is true: gated attention is not implemented in Kiln");
  if (r.optional("sliding_window")) r.fail("sliding_window", "is set: sliding-window attention is not implemented in Kiln");
  if (r.boolean("flash_attention", false)) r.fail("flash_attention", "is true: Kiln's attention is one fused op already; leave it null");
  opt.output_shape = read_int_list(r, "output_shape", 1, kMaxConfigSize);
  for (int64_t a : read_int_list(r, "attention_axes", -64, 64)) opt.attention_axes.push_back(static_cast<int>(a));
  opt.kernel_initializer = read_initializer(r, "kernel_initializer", opt.kernel_initializer);
  opt.bias_initializer = read_initializer(r, "bias_initializer", opt.bias_initializer);
  for (const char* k : {"kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                        "bias_constraint"}) {
    if (r.optional(k)) r.fail(k, "is set: regularizers and constraints are not implemented for MultiHeadAttention in Kiln");
  }
  opt.seed = static_cast<uint64_t>(r.integer("seed", 0, INT64_MIN, INT64_MAX));
  opt.use_causal_mask = r.boolean("use_causal_mask", false);
  r.finish();
  return with_base_config(MultiHeadAttention(heads, key_dim, opt, base.name), base);
}

const bool registered = register_builtin_layer("MultiHeadAttention", from_config);

}  // namespace

Layer MultiHeadAttention(int64_t num_heads, int64_t key_dim, const MultiHeadAttentionOptions& options,
                         const std::string& name) {
  return Layer(std::make_shared<MultiHeadAttentionImpl>(num_heads, key_dim, options, name));
}

MultiHeadAttentionResult multi_head_attention(const Layer& layer, const MultiHeadAttentionCall& call) {
  if (!dynamic_cast<MultiHeadAttentionImpl*>(&layer.impl())) {
    throw std::invalid_argument("multi_head_attention: layer '" + layer->name() + "' is a " + layer->class_name() +
                                ", not a MultiHeadAttention");
  }
  std::vector<MaskedTensor> inputs{{call.query, call.query_mask}, {call.value, call.value_mask}};
  if (call.key.defined() || call.attention_mask.defined()) {
    inputs.push_back(call.key.defined() ? MaskedTensor{call.key, call.key_mask} : MaskedTensor{call.value, Tensor()});
  }
  if (call.attention_mask.defined()) inputs.push_back({call.attention_mask, Tensor()});
  CallRequest request{call.use_causal_mask, call.return_attention_scores, Tensor()};
  CallRequest* previous = t_request;
  t_request = &request;
  MaskedTensor out;
  try {
    out = layer.call_masked(inputs, call.training);
  } catch (...) {
    t_request = previous;
    throw;
  }
  t_request = previous;
  return {out.value, request.scores};
}

}  // namespace kiln::nn
