#include "tensor/ops/binary.h"

#include <stdexcept>

#include "tensor/ops/recorder.h"
#include "tensor/ops/common.h"
#include "tensor/ops/eltwise.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"

namespace kiln {
namespace {

struct BinaryKind {
  const char* name;
  dnnl::algorithm alg;
  bool commutative;
};

const BinaryKind kAdd{"add", dnnl::algorithm::binary_add, true};
const BinaryKind kSub{"sub", dnnl::algorithm::binary_sub, false};
const BinaryKind kMul{"mul", dnnl::algorithm::binary_mul, true};
const BinaryKind kDiv{"div", dnnl::algorithm::binary_div, false};
const BinaryKind kMax{"maximum", dnnl::algorithm::binary_max, true};
const BinaryKind kMin{"minimum", dnnl::algorithm::binary_min, true};
const BinaryKind kEq{"equal", dnnl::algorithm::binary_eq, true};
const BinaryKind kGt{"greater", dnnl::algorithm::binary_gt, false};
const BinaryKind kGe{"greater_equal", dnnl::algorithm::binary_ge, false};
const BinaryKind kLt{"less", dnnl::algorithm::binary_lt, false};

Shape padded(const Shape& s, size_t n) {
  Shape out(n - s.size(), 1);
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

// The oneDNN computation; oneDNN broadcasts only its second source, so the first is
// expanded (or the operands swapped, for commutative ops) when it is the smaller one.
Tensor binary_forward(const BinaryKind& kind, const Tensor& a, const Tensor& b,
                      detail::ReluFusion relu = detail::ReluFusion::none) {
  detail::check_defined(a, kind.name, "first input");
  detail::check_defined(b, kind.name, "second input");
  detail::check_same_dtype(a, b, kind.name);
  if (!is_floating(a.dtype())) {
    throw std::invalid_argument(std::string(kind.name) + ": expected f32 or bf16 inputs, got " + a.describe() +
                                " and " + b.describe());
  }
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), kind.name);
  Tensor out = Tensor::empty(out_shape, a.dtype());
  if (out.numel() == 0) return out;
  size_t nd = std::max<size_t>(out_shape.size(), 1);
  Shape dims = padded(out_shape, nd);
  Tensor src0 = detail::dense(a), src1 = detail::dense(b);
  if (padded(src0.shape(), nd) != dims) {
    if (kind.commutative && padded(src1.shape(), nd) == dims) {
      std::swap(src0, src1);
    } else {
      src0 = detail::dense(broadcast_to(stop_gradient(src0), out_shape));
    }
  }
  auto md0 = onednn::desc_of(src0, padded(src0.shape(), nd));
  auto md1 = onednn::desc_of(src1, padded(src1.shape(), nd));
  auto mdd = onednn::desc_of(out, dims);
  auto prim = onednn::cached<dnnl::binary>(
      kind.name, onednn::KeyBuilder(kind.name).add(md0).add(md1).add(int64_t(relu)), [&] {
        dnnl::primitive_attr attr = onednn::default_attr();
        if (relu != detail::ReluFusion::none) {
          dnnl::post_ops po;
          detail::append_relu(po, relu);
          attr.set_post_ops(po);
        }
        return dnnl::binary::primitive_desc(dnnl::binary::desc(kind.alg, md0, md1, mdd), attr, onednn::cpu_engine());
      });
  onednn::execute(kind.name, prim.primitive,
                  {{DNNL_ARG_SRC_0, onednn::memory_of(src0, md0)},
                   {DNNL_ARG_SRC_1, onednn::memory_of(src1, md1)},
                   {DNNL_ARG_DST, onednn::memory_of(out, mdd)}});
  return out;
}

using GradRule = std::vector<Tensor> (*)(const Tensor& g, const Tensor& a, const Tensor& b);

// rule_reads_inputs = false is Flashlight's withoutData: add and sub need only the inputs'
// shapes for their gradient, so their closures must not keep the activations alive.
Tensor binary_op(const BinaryKind& kind, const Tensor& a, const Tensor& b, GradRule rule,
                 bool rule_reads_inputs = true) {
  Tensor out = binary_forward(kind, a, b);
  if (rule && autograd::should_record({&a, &b})) {
    Tensor kept_a = rule_reads_inputs ? a : Tensor(), kept_b = rule_reads_inputs ? b : Tensor();
    Shape a_shape = a.shape(), b_shape = b.shape();
    autograd::record(kind.name, {a, b}, {out}, [kept_a, kept_b, a_shape, b_shape, rule](const std::vector<Tensor>& g) {
      std::vector<Tensor> full = rule(g[0], kept_a, kept_b);
      return std::vector<Tensor>{sum_to_shape(full[0], a_shape), sum_to_shape(full[1], b_shape)};
    });
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary_op(
      kAdd, a, b, [](const Tensor& g, const Tensor&, const Tensor&) { return std::vector<Tensor>{g, g}; },
      /*rule_reads_inputs=*/false);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary_op(
      kSub, a, b, [](const Tensor& g, const Tensor&, const Tensor&) { return std::vector<Tensor>{g, -g}; },
      /*rule_reads_inputs=*/false);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary_op(kMul, a, b, [](const Tensor& g, const Tensor& a, const Tensor& b) {
    return std::vector<Tensor>{g * b, g * a};
  });
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary_op(kDiv, a, b, [](const Tensor& g, const Tensor& a, const Tensor& b) {
    Tensor ga = g / b;
    return std::vector<Tensor>{ga, -(ga * a) / b};
  });
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary_op(kMax, a, b, [](const Tensor& g, const Tensor& a, const Tensor& b) {
    Tensor a_wins = greater_equal(a, b);
    return std::vector<Tensor>{g * a_wins, g * (1.0f - a_wins)};
  });
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return binary_op(kMin, a, b, [](const Tensor& g, const Tensor& a, const Tensor& b) {
    Tensor b_wins = greater(a, b);
    return std::vector<Tensor>{g * (1.0f - b_wins), g * b_wins};
  });
}

Tensor add_relu(const Tensor& a, const Tensor& b) {
  Tensor out;
  bool valid = a.defined() && b.defined() && a.dtype() == b.dtype() && is_floating(a.dtype());
  if (valid && a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous()) {
    // Residual connections add tensors of one shape: one pass of our own keeps NaN (eltwise.h).
    out = Tensor::empty(a.shape(), a.dtype());
    detail::add_relu_same_shape(a, b, out);
  } else {
    detail::ReluFusion relu_fusion = detail::ReluFusion::nan_keeping_post_op;
    if (valid) {
      int64_t outputs = numel(broadcast_shapes(a.shape(), b.shape(), "add_relu"));
      relu_fusion = detail::choose_relu_fusion(a, b, Tensor(), /*terms=*/0, outputs);
      if (relu_fusion == detail::ReluFusion::unfused) return relu(add(a, b));
    }
    out = binary_forward(kAdd, a, b, relu_fusion);
  }
  if (autograd::should_record({&a, &b})) {
    Shape as = a.shape(), bs = b.shape();
    autograd::record("add_relu", {a, b}, {out}, [out, as, bs](const std::vector<Tensor>& g) {
      Tensor gz = eltwise_backward(EltwiseKind::relu, g[0], out);  // relu'(z) from relu(z) itself
      return std::vector<Tensor>{sum_to_shape(gz, as), sum_to_shape(gz, bs)};
    });
  }
  return out;
}

namespace {
// Comparisons have no gradient; only a trace sees them.
Tensor comparison(const BinaryKind& kind, const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(kind, a, b);
  if (autograd::observing()) autograd::observe(ops::Attrs(kind.name), {a, b}, {out});
  return out;
}
}  // namespace

Tensor equal(const Tensor& a, const Tensor& b) { return comparison(kEq, a, b); }
Tensor greater(const Tensor& a, const Tensor& b) { return comparison(kGt, a, b); }
Tensor greater_equal(const Tensor& a, const Tensor& b) { return comparison(kGe, a, b); }
Tensor less(const Tensor& a, const Tensor& b) { return comparison(kLt, a, b); }

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return affine(a, -1.0f, 0.0f); }
Tensor operator+(const Tensor& a, float s) { return affine(a, 1.0f, s); }
Tensor operator+(float s, const Tensor& a) { return affine(a, 1.0f, s); }
Tensor operator-(const Tensor& a, float s) { return affine(a, 1.0f, -s); }
Tensor operator-(float s, const Tensor& a) { return affine(a, -1.0f, s); }
Tensor operator*(const Tensor& a, float s) { return affine(a, s, 0.0f); }
Tensor operator*(float s, const Tensor& a) { return affine(a, s, 0.0f); }
Tensor operator/(const Tensor& a, float s) { return affine(a, 1.0f / s, 0.0f); }
Tensor operator/(float s, const Tensor& a) { return pow(a, -1.0f) * s; }

}  // namespace kiln
