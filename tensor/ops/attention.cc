#include "tensor/ops/attention.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/common.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/recorder.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/softmax.h"
#include "tensor/random.h"

namespace kiln {

const char* attention_mask_name(AttentionMask m) { return m == AttentionMask::additive ? "additive" : "boolean"; }

AttentionMask attention_mask_from_name(const std::string& name) {
  if (name == "additive") return AttentionMask::additive;
  if (name == "boolean") return AttentionMask::boolean;
  throw std::invalid_argument("unknown attention mask kind '" + name + "' (expected 'additive' or 'boolean')");
}

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Geometry {
  int n = 0;         // rank of q
  int64_t lead = 1;  // product of the leading dimensions
  int64_t tq = 0, tk = 0;
};

Shape scores_shape_of(const Tensor& q, const Tensor& k) {
  Shape s = q.shape();
  s.back() = k.shape()[k.ndim() - 2];
  return s;
}

Geometry check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, AttentionMask kind) {
  detail::check_defined(q, kOp, "query");
  detail::check_defined(k, kOp, "key");
  detail::check_defined(v, kOp, "value");
  detail::check_floating(q, kOp);
  detail::check_same_dtype(q, k, kOp);
  detail::check_same_dtype(q, v, kOp);
  auto shapes = [&] { return q.describe() + ", " + k.describe() + ", " + v.describe(); };
  if (q.ndim() < 2 || k.ndim() != q.ndim() || v.ndim() != q.ndim()) {
    throw std::invalid_argument(std::string(kOp) + ": query, key and value need one rank >= 2, got " + shapes());
  }
  int n = q.ndim();
  for (int i = 0; i < n - 2; ++i) {
    if (k.shape()[i] != q.shape()[i] || v.shape()[i] != q.shape()[i]) {
      throw std::invalid_argument(std::string(kOp) + ": leading dimensions of query, key and value differ: " + shapes());
    }
  }
  if (k.shape()[n - 1] != q.shape()[n - 1]) {
    throw std::invalid_argument(std::string(kOp) + ": query and key depths differ: " + shapes());
  }
  if (v.shape()[n - 2] != k.shape()[n - 2]) {
    throw std::invalid_argument(std::string(kOp) + ": key and value lengths differ: " + shapes());
  }
  Geometry g;
  g.n = n;
  for (int i = 0; i < n - 2; ++i) g.lead *= q.shape()[i];
  g.tq = q.shape()[n - 2];
  g.tk = k.shape()[n - 2];
  if (mask.defined()) {
    bool dtype_ok = kind == AttentionMask::additive ? is_floating(mask.dtype())
                                                    : is_floating(mask.dtype()) || mask.dtype() == DType::u8;
    if (!dtype_ok) {
      throw std::invalid_argument(std::string(kOp) + ": a " + attention_mask_name(kind) + " mask must be " +
                                  (kind == AttentionMask::additive ? "f32 or bf16" : "f32, bf16 or u8") + ", got " +
                                  mask.describe());
    }
    Shape s = scores_shape_of(q, k);
    bool fits = mask.ndim() <= n;
    for (int i = 0; fits && i < mask.ndim(); ++i) {
      int64_t d = mask.shape()[mask.ndim() - 1 - i], want = s[n - 1 - i];
      fits = d == 1 || d == want;
    }
    if (!fits) {
      throw std::invalid_argument(std::string(kOp) + ": mask " + mask.describe() + " does not broadcast to the scores " +
                                  shape_str(s) + " of " + shapes());
    }
  }
  return g;
}

// t with its last two axes swapped, as a view (not recorded).
Tensor transposed_view(const Tensor& t) {
  Shape s = t.shape();
  Strides st = t.strides();
  std::swap(s[t.ndim() - 1], s[t.ndim() - 2]);
  std::swap(st[t.ndim() - 1], st[t.ndim() - 2]);
  return t.alias(s, st, t.offset());
}

// Which keys each query row may see: the mask (dense f32, broadcast) and the causal flag.
class RowMasks {
 public:
  RowMasks(const Tensor& mask_f32, AttentionMask kind, bool causal, const Geometry& g, const Shape& scores)
      : kind_(kind), causal_(causal), tq_(g.tq) {
    if (!mask_f32.defined()) return;
    data_ = mask_f32.data<float>();
    int n = g.n, offset = n - mask_f32.ndim();
    Strides ms(n, 0);
    for (int i = 0; i < mask_f32.ndim(); ++i) {
      if (mask_f32.shape()[i] != 1) ms[offset + i] = mask_f32.strides()[i];
    }
    row_stride_ = ms[n - 2];
    col_stride_ = ms[n - 1];
    lead_offset_.assign(g.lead, 0);
    for (int64_t b = 0; b < g.lead; ++b) {
      int64_t rest = b;
      for (int i = n - 3; i >= 0; --i) {
        lead_offset_[b] += (rest % scores[i]) * ms[i];
        rest /= scores[i];
      }
    }
  }

  int64_t query(int64_t r) const { return r % tq_; }
  // Row r's (of lead * Tq) mask values, or nullptr when there is no mask.
  const float* row(int64_t r) const { return data_ ? data_ + lead_offset_[r / tq_] + (r % tq_) * row_stride_ : nullptr; }
  float value(const float* m, int64_t j) const { return m[j * col_stride_]; }
  // Whether query i keeps key j, given its row's mask values m.
  bool keeps(const float* m, int64_t i, int64_t j) const {
    if (causal_ && j > i) return false;
    if (!m) return true;
    float mv = value(m, j);
    return kind_ == AttentionMask::boolean ? mv > 0.5f : mv != -kInf;
  }
  bool additive() const { return data_ && kind_ == AttentionMask::additive; }
  bool any_kept(int64_t r, int64_t tk) const {
    const float* m = row(r);
    int64_t i = query(r);
    for (int64_t j = 0; j < tk; ++j) {
      if (keeps(m, i, j)) return true;
    }
    return false;
  }

 private:
  const float* data_ = nullptr;
  AttentionMask kind_;
  bool causal_;
  int64_t tq_;
  int64_t row_stride_ = 0, col_stride_ = 0;
  std::vector<int64_t> lead_offset_;
};

// The masked softmax of row r of the scores, in place. Masked keys get 0, so a row with no
// kept key is all 0. NaN scores stay NaN (the max keeps a NaN once it sees one).
void softmax_row(float* s, int64_t r, int64_t tk, const RowMasks& masks) {
  const float* m = masks.row(r);
  const int64_t i = masks.query(r);
  const bool add = masks.additive();
  float mx = -kInf;
  bool any = false;
  for (int64_t j = 0; j < tk; ++j) {
    if (!masks.keeps(m, i, j)) {
      s[j] = 0.f;
      continue;
    }
    if (add) s[j] += masks.value(m, j);
    any = true;
    if (std::isnan(s[j]) || s[j] > mx) mx = std::isnan(mx) ? mx : s[j];
  }
  if (!any) return;  // every s[j] is already 0 (masked)
  float sum = 0.f;
  for (int64_t j = 0; j < tk; ++j) {
    s[j] = masks.keeps(m, i, j) ? std::exp(s[j] - mx) : 0.f;
    sum += s[j];
  }
  const float inv = 1.f / sum;
  for (int64_t j = 0; j < tk; ++j) s[j] *= inv;
}

// The backward of softmax_row, in place on dp (dL/dweights, f32), given the weights p and
// the dropout's keep mask (nullptr without dropout): dL/dscores. Rows with no kept key were
// constant in the scores and pass nothing.
template <typename T>
void softmax_backward_row(float* dp, const T* p, const uint8_t* keep, float keep_scale, int64_t r, int64_t tk,
                          const RowMasks& masks) {
  if (!masks.any_kept(r, tk)) {
    for (int64_t j = 0; j < tk; ++j) dp[j] = 0.f;
    return;
  }
  float dot = 0.f;
  for (int64_t j = 0; j < tk; ++j) {
    if (keep) dp[j] = keep[j] ? dp[j] * keep_scale : 0.f;
    dot += dp[j] * static_cast<float>(p[j]);
  }
  for (int64_t j = 0; j < tk; ++j) dp[j] = static_cast<float>(p[j]) * (dp[j] - dot);
}

// A stream per row, so rows draw in parallel and the masks depend only on the seed.
uint64_t row_seed(uint64_t seed, int64_t r) {
  return seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(r) * 0xbf58476d1ce4e5b9ull + 1;
}

// Keep mask (u8, 1 = kept) and the dropped-out weights p * keep / (1 - rate).
std::pair<Tensor, Tensor> dropout_weights(const Tensor& p_f32, float rate, uint64_t seed, int64_t rows, int64_t tk) {
  Tensor keep = Tensor::empty(p_f32.shape(), DType::u8);
  Tensor dropped = Tensor::empty(p_f32.shape(), DType::f32);
  uint8_t* kp = keep.data<uint8_t>();
  const float* p = p_f32.data<float>();
  float* d = dropped.data<float>();
  const float scale = 1.f / (1.f - rate);
#pragma omp parallel for if (rows * tk > (1 << 14))
  for (int64_t r = 0; r < rows; ++r) {
    RandomStream rs(row_seed(seed, r));
    for (int64_t j = 0; j < tk; ++j) {
      const int64_t e = r * tk + j;
      kp[e] = rs.uniform01() >= rate ? 1 : 0;
      d[e] = kp[e] ? p[e] * scale : 0.f;
    }
  }
  return {keep, dropped};
}

// p * keep / (1 - rate) again, in p's dtype (the backward recomputes it rather than keep it).
Tensor reapply_dropout(const Tensor& p, const Tensor& keep, float rate) {
  Tensor pf = p.dtype() == DType::f32 ? p : cast(p, DType::f32);
  Tensor out = Tensor::empty(p.shape(), DType::f32);
  const float* src = pf.data<float>();
  const uint8_t* kp = keep.data<uint8_t>();
  float* d = out.data<float>();
  const float scale = 1.f / (1.f - rate);
  const int64_t n = p.numel();
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t e = 0; e < n; ++e) d[e] = kp[e] ? src[e] * scale : 0.f;
  return p.dtype() == DType::f32 ? out : cast(out, p.dtype());
}

Tensor mask_as_f32(const Tensor& mask) {
  if (!mask.defined()) return Tensor();
  return detail::dense(mask.dtype() == DType::f32 ? mask : cast(mask, DType::f32));
}

struct Saved {
  Tensor q, k, v, mask, weights, keep;
  AttentionOptions options;
  float scale;
};

std::vector<Tensor> attention_backward(const Saved& s, const Tensor& grad) {
  std::vector<Tensor> grads(s.mask.defined() ? 4 : 3);
  const bool want_q = autograd::needs_input_grad(0), want_k = autograd::needs_input_grad(1);
  const bool want_v = autograd::needs_input_grad(2);
  const bool want_mask = s.mask.defined() && s.options.mask_kind == AttentionMask::additive && autograd::needs_input_grad(3);
  {
    autograd::QuietScope quiet;
    const DType dt = s.q.dtype();
    Tensor g = detail::dense(grad);
    Geometry geo = check_inputs(s.q, s.k, s.v, s.mask, s.options.mask_kind);
    const float rate = s.options.dropout_rate;
    if (want_v) {
      Tensor used = s.keep.defined() ? reapply_dropout(s.weights, s.keep, rate) : s.weights;
      grads[2] = detail::scaled_matmul(transposed_view(used), g, 1.f, dt, "scaled_dot_product_attention_backward");
    }
    if (want_q || want_k || want_mask) {
      Tensor ds = detail::scaled_matmul(g, transposed_view(s.v), 1.f, DType::f32, "scaled_dot_product_attention_backward");
      Tensor mask_f32 = mask_as_f32(s.mask);
      RowMasks masks(mask_f32, s.options.mask_kind, s.options.causal, geo, ds.shape());
      const int64_t rows = geo.lead * geo.tq, tk = geo.tk;
      float* dsp = ds.data<float>();
      const uint8_t* kp = s.keep.defined() ? s.keep.data<uint8_t>() : nullptr;
      const float keep_scale = 1.f / (1.f - rate);
      auto run = [&](const auto* p) {
#pragma omp parallel for if (rows * tk > (1 << 14))
        for (int64_t r = 0; r < rows; ++r) {
          softmax_backward_row(dsp + r * tk, p + r * tk, kp ? kp + r * tk : nullptr, keep_scale, r, tk, masks);
        }
      };
      if (s.weights.dtype() == DType::f32) {
        run(s.weights.data<float>());
      } else {
        run(s.weights.data<bf16>());
      }
      Tensor ds_t = dt == DType::f32 ? ds : cast(ds, dt);
      if (want_q) grads[0] = detail::scaled_matmul(ds_t, s.k, s.scale, dt, "scaled_dot_product_attention_backward");
      if (want_k) grads[1] = detail::scaled_matmul(transposed_view(ds_t), s.q, s.scale, dt, "scaled_dot_product_attention_backward");
      if (want_mask) {
        Tensor gm = sum_to_shape(ds, s.mask.shape());
        grads[3] = gm.dtype() == s.mask.dtype() ? gm : cast(gm, s.mask.dtype());
      }
    }
  }
  std::vector<Tensor> inputs{grad, s.q, s.k, s.v};
  if (s.mask.defined()) inputs.push_back(s.mask);
  std::vector<Tensor> outputs;
  for (const Tensor& t : grads) {
    if (t.defined()) outputs.push_back(t);
  }
  autograd::record_without_second_order("scaled_dot_product_attention_backward", inputs, outputs);
  return grads;
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                    const AttentionOptions& options) {
  Geometry geo = check_inputs(q, k, v, mask, options.mask_kind);
  if (!(options.dropout_rate >= 0.f && options.dropout_rate < 1.f)) {
    throw std::invalid_argument(std::string(kOp) + ": dropout_rate must be in [0, 1), got " +
                                std::to_string(options.dropout_rate));
  }
  const int64_t depth = q.shape().back();
  double scale_d = options.scale ? *options.scale : 1.0 / std::sqrt(static_cast<double>(depth > 0 ? depth : 1));
  if (!std::isfinite(scale_d) || std::fabs(scale_d) > std::numeric_limits<float>::max()) {
    throw std::invalid_argument(std::string(kOp) + ": scale must be a finite float, got " + std::to_string(scale_d));
  }
  const float scale = static_cast<float>(scale_d);
  const bool dropout = options.dropout_rate > 0.f;
  if (dropout && autograd::observing()) {
    throw std::invalid_argument(std::string(kOp) + ": dropout runs only in training, which a trace does not record "
                                "(trace the model for inference)");
  }
  const DType dt = q.dtype();
  Shape out_shape = q.shape();
  out_shape.back() = v.shape().back();
  Tensor weights, keep, out;
  {
    autograd::QuietScope quiet;
    Tensor scores = detail::scaled_matmul(q, transposed_view(k), scale, DType::f32, kOp);
    Tensor mask_f32 = mask_as_f32(mask);
    RowMasks masks(mask_f32, options.mask_kind, options.causal, geo, scores.shape());
    const int64_t rows = geo.lead * geo.tq, tk = geo.tk;
    if (!mask.defined() && !options.causal) {
      // Nothing to mask: oneDNN's vectorized softmax instead of the masked loop.
      if (scores.numel()) scores = softmax(scores, -1);
    } else {
      float* sp = scores.numel() ? scores.data<float>() : nullptr;
#pragma omp parallel for if (rows * tk > (1 << 14))
      for (int64_t r = 0; r < rows; ++r) softmax_row(sp + r * tk, r, tk, masks);
    }
    weights = dt == DType::f32 ? scores : cast(scores, dt);
    Tensor used = weights;
    if (dropout && scores.numel()) {
      Tensor dropped;
      std::tie(keep, dropped) = dropout_weights(scores, options.dropout_rate, options.dropout_seed, rows, tk);
      used = dt == DType::f32 ? dropped : cast(dropped, dt);
    }
    out = detail::scaled_matmul(used, v, 1.f, dt, kOp);
  }
  std::vector<Tensor> inputs{q, k, v};
  if (mask.defined()) inputs.push_back(mask);
  if (autograd::should_record(inputs)) {
    auto saved = std::make_shared<Saved>(Saved{q, k, v, mask, weights, keep, options, scale});
    autograd::record_lazy(
        kOp,
        [&] {
          return ops::Attrs(kOp)
              .set("scale", ops::AttrValue(scale_d))
              .set("causal", options.causal)
              .set("mask_kind", attention_mask_name(options.mask_kind));
        },
        inputs, {out}, [saved](const std::vector<Tensor>& g) { return attention_backward(*saved, g[0]); });
  }
  return out;
}

}  // namespace kiln
