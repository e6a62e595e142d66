#include "tensor/ops/matmul.h"

#include <stdexcept>

#include "tensor/ops/recorder.h"
#include "tensor/ops/binary.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/common.h"
#include "tensor/ops/eltwise.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"

namespace kiln {
namespace {

// oneDNN's fast matmul kernels need one of the last two dims to be unit-stride; other
// views are copied.
Tensor matmul_operand(const Tensor& t) {
  int n = t.ndim();
  const Strides& s = t.strides();
  bool row_major = s[n - 1] == 1 || t.shape()[n - 1] == 1;
  bool col_major = s[n - 2] == 1 || t.shape()[n - 2] == 1;
  bool batch_ok = true;
  for (int i = 0; i < n - 2; ++i) batch_ok = batch_ok && (s[i] != 0 || t.shape()[i] == 1);
  return (row_major || col_major) && batch_ok ? t : detail::dense(t);
}

// Runs C = A @ B (+ bias) (+ relu) for tensors already of equal rank.
Tensor matmul_kernel(const Tensor& a, const Tensor& b, const Tensor& bias, detail::ReluFusion relu, const char* op,
                     DType out_dtype, float scale = 1.f) {
  int n = a.ndim();
  // Per thread, so that each call reuses its capacity (Tensor::empty copies it).
  thread_local Shape out_shape;
  out_shape.resize(n);
  for (int i = 0; i < n - 2; ++i) {
    int64_t da = a.shape()[i], db = b.shape()[i];
    if (da != db && da != 1 && db != 1) {
      throw std::invalid_argument(std::string(op) + ": batch dimensions of " + a.describe() + " and " +
                                  b.describe() + " cannot be broadcast");
    }
    out_shape[i] = da == 1 ? db : da;
  }
  out_shape[n - 2] = a.shape()[n - 2];
  out_shape[n - 1] = b.shape()[n - 1];
  Tensor out = Tensor::empty(out_shape, out_dtype);
  if (out.numel() == 0) return out;
  if (a.shape()[n - 1] == 0) {
    out.fill(0.f);
    return out;
  }
  Tensor src = matmul_operand(a), wei = matmul_operand(b);
  Tensor bias_dense = bias.defined() ? detail::dense(bias) : Tensor();
  // The bias as oneDNN takes it: [1, ..., 1, N].
  thread_local Shape bias_shape;
  bias_shape.assign(n, 1);
  bias_shape[n - 1] = bias.defined() ? bias.numel() : 1;
  // Keyed on the tensors' geometry, which determines their descriptors: a hit builds none.
  onednn::KeyBuilder key(op);
  key.add(src).add(wei).add(out).add(int64_t(relu)).add(scale);
  if (bias.defined()) key.add(bias_dense).add(bias_shape);
  auto prim = onednn::cached<dnnl::matmul>(op, key, [&] {
    dnnl::primitive_attr attr = onednn::default_attr();
    if (scale != 1.f) attr.set_output_scales(0, {scale});
    if (relu != detail::ReluFusion::none) {
      dnnl::post_ops po;
      detail::append_relu(po, relu);
      attr.set_post_ops(po);
    }
    auto src_md = onednn::desc_of(src), wei_md = onednn::desc_of(wei), dst_md = onednn::desc_of(out);
    auto desc = bias.defined() ? dnnl::matmul::desc(src_md, wei_md, onednn::desc_of(bias_dense, bias_shape), dst_md)
                               : dnnl::matmul::desc(src_md, wei_md, dst_md);
    return dnnl::matmul::primitive_desc(desc, attr, onednn::cpu_engine());
  });
  dnnl::memory src_mem = onednn::memory_of(src), wei_mem = onednn::memory_of(wei), dst_mem = onednn::memory_of(out);
  if (bias.defined()) {
    onednn::execute(op, prim.primitive,
                    {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, wei_mem}, {DNNL_ARG_DST, dst_mem},
                     {DNNL_ARG_BIAS, onednn::memory_as(bias_dense, bias_shape)}});
  } else {
    onednn::execute(op, prim.primitive, {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, wei_mem}, {DNNL_ARG_DST, dst_mem}});
  }
  return out;
}

Tensor lift_to_rank(const Tensor& t, int n) {
  if (t.ndim() == n) return t;
  Shape s(n - t.ndim(), 1);
  s.insert(s.end(), t.shape().begin(), t.shape().end());
  return reshape(t, s);
}

bool is_int8(DType d) { return d == DType::s8 || d == DType::u8; }

// An operand as the kernel reads it. matmul_kernel records nothing, so a tensor is passed as
// is; stop_gradient (an alias per operand) is needed only where a recorded reshape follows,
// or for a trace, which keeps its "identity" edge.
Tensor kernel_operand(const Tensor& t) { return autograd::observing() ? stop_gradient(t) : t; }

// reshape(t, {-1, cols}) for the kernels: t itself when it already is that dense matrix
// (a reshape to its own shape is the identity, and the alias would cost a TensorImpl).
Tensor as_matrix(const Tensor& t, int64_t cols) {
  if (t.ndim() == 2 && t.shape()[1] == cols && t.is_contiguous() && !autograd::observing()) return t;
  return reshape(t, {-1, cols});
}

// A 1-D operand as the matrix numpy's matmul reads it (a view; matmul records itself
// against the 1-D tensor).
Tensor as_vector_matrix(const Tensor& v, bool row) {
  int64_t k = v.shape()[0], stride = v.strides()[0];
  return row ? v.alias({1, k}, {k * stride, stride}, v.offset()) : v.alias({k, 1}, {stride, 1}, v.offset());
}

// out without the row (a was 1-D) and/or column (b was 1-D) dimension a vector operand added.
Tensor drop_vector_dims(const Tensor& out, bool drop_row, bool drop_col) {
  int n = out.ndim();
  Shape shape;
  Strides strides;
  for (int i = 0; i < n; ++i) {
    if ((drop_row && i == n - 2) || (drop_col && i == n - 1)) continue;
    shape.push_back(out.shape()[i]);
    strides.push_back(out.strides()[i]);
  }
  return out.alias(shape, strides, out.offset());
}

// The gradients of matmul(a, b) when an operand is 1-D: the matrix form's, with the vector's
// dimension put back into the output gradient and taken out of the operand's (Kiln ops, so
// second-order gradients work).
std::vector<Tensor> vector_matmul_grads(const Tensor& a, const Tensor& b, const Tensor& g) {
  Shape a2 = a.shape(), b2 = b.shape(), g2 = g.shape();
  if (a.ndim() == 1) a2.insert(a2.begin(), 1);
  if (b.ndim() == 1) b2.push_back(1);
  if (a.ndim() == 1) g2.insert(g2.end() - (b.ndim() == 1 ? 0 : 1), 1);
  if (b.ndim() == 1) g2.push_back(1);
  Tensor am = reshape(a, a2), bm = reshape(b, b2), gm = reshape(g, g2);
  std::vector<Tensor> grads(2);
  if (autograd::needs_input_grad(0)) grads[0] = reshape(sum_to_shape(matmul(gm, transpose(bm)), a2), a.shape());
  if (autograd::needs_input_grad(1)) grads[1] = reshape(sum_to_shape(matmul(transpose(am), gm), b2), b.shape());
  return grads;
}

}  // namespace

Tensor detail::scaled_matmul(const Tensor& a, const Tensor& b, float scale, DType out_dtype, const char* op) {
  int n = std::max(a.ndim(), b.ndim());
  return matmul_kernel(lift_to_rank(a, n), lift_to_rank(b, n), Tensor(), detail::ReluFusion::none, op, out_dtype, scale);
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  detail::check_defined(a, "matmul", "first input");
  detail::check_defined(b, "matmul", "second input");
  bool int8 = is_int8(a.dtype()) && b.dtype() == DType::s8;
  if (!int8) {
    detail::check_floating(a, "matmul");
    detail::check_floating(b, "matmul");
    detail::check_same_dtype(a, b, "matmul");
  }
  if (a.ndim() < 1 || b.ndim() < 1) {
    throw std::invalid_argument("matmul: inputs need rank >= 1, got " + a.describe() + " and " + b.describe());
  }
  if (a.shape().back() != b.shape()[b.ndim() >= 2 ? b.ndim() - 2 : 0]) {
    throw std::invalid_argument("matmul: inner dimensions differ: " + a.describe() + " @ " + b.describe());
  }
  // numpy's rule for vectors: a 1-D a is a row [1, K], a 1-D b a column [K, 1], and the
  // added dimension is dropped from the result.
  Tensor a2 = a.ndim() == 1 ? as_vector_matrix(a, true) : a;
  Tensor b2 = b.ndim() == 1 ? as_vector_matrix(b, false) : b;
  int n = std::max(a2.ndim(), b2.ndim());
  Tensor a_n = a2.ndim() == n ? kernel_operand(a2) : lift_to_rank(stop_gradient(a2), n);
  Tensor b_n = b2.ndim() == n ? kernel_operand(b2) : lift_to_rank(stop_gradient(b2), n);
  Tensor out = matmul_kernel(a_n, b_n, Tensor(), detail::ReluFusion::none, "matmul", int8 ? DType::s32 : a.dtype());
  if (a.ndim() == 1 || b.ndim() == 1) out = drop_vector_dims(out, a.ndim() == 1, b.ndim() == 1);
  if (int8) return out;
  if (autograd::should_record({&a, &b})) {
    autograd::record("matmul", {a, b}, {out}, [a, b](const std::vector<Tensor>& g) {
      std::vector<Tensor> grads(2);
      if (a.ndim() == 1 || b.ndim() == 1) return vector_matmul_grads(a, b, g[0]);
      if (autograd::needs_input_grad(0)) grads[0] = sum_to_shape(matmul(g[0], transpose(b)), a.shape());
      if (autograd::needs_input_grad(1)) grads[1] = sum_to_shape(matmul(transpose(a), g[0]), b.shape());
      return grads;
    });
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, FusedActivation activation) {
  detail::check_floating(x, "linear");
  detail::check_rank(w, 2, "linear", "weights");
  detail::check_same_dtype(x, w, "linear");
  if (x.ndim() < 1 || x.shape().back() != w.shape()[0]) {
    throw std::invalid_argument("linear: input " + x.describe() + " does not match weights " + w.describe() +
                                " (expected last input dimension " + std::to_string(w.shape()[0]) + ")");
  }
  if (bias.defined()) {
    detail::check_floating(bias, "linear");
    if (bias.ndim() != 1 || bias.shape()[0] != w.shape()[1]) {
      throw std::invalid_argument("linear: bias " + bias.describe() + " does not match weights " + w.describe());
    }
  }
  int64_t k = w.shape()[0], n = w.shape()[1];
  Tensor x2 = x.ndim() == 2 && x.is_contiguous() ? kernel_operand(x) : reshape(stop_gradient(x), {-1, k});
  detail::ReluFusion relu_fusion = detail::ReluFusion::none;
  if (activation == FusedActivation::relu && x2.shape()[0] * n > 0) {
    relu_fusion = detail::choose_relu_fusion(x2, w, bias, k, x2.shape()[0] * n);
    if (relu_fusion == detail::ReluFusion::unfused) return relu(linear(x, w, bias, FusedActivation::none));
  }
  Tensor out2 = matmul_kernel(x2, kernel_operand(w), bias.defined() ? kernel_operand(bias) : Tensor(), relu_fusion,
                              "linear", x.dtype());
  Tensor out = out2;  // a 2-D input's output is the kernel's; other ranks get their shape back
  if (x.ndim() != 2) {
    Shape out_shape = x.shape();
    out_shape.back() = n;
    out = out2.alias(out_shape, contiguous_strides(out_shape), out2.offset());
  }
  if (autograd::should_record({&x, &w, &bias})) {
    std::vector<Tensor> inputs;
    inputs.reserve(3);
    inputs.push_back(x);
    inputs.push_back(w);
    if (bias.defined()) inputs.push_back(bias);
    autograd::record_lazy("linear", [&] { return ops::Attrs("linear").set("activation", fused_activation_name(activation)); },
                          inputs, {out}, [x, w, bias, out, activation, k, n](const std::vector<Tensor>& g) {
      Tensor gz = as_matrix(g[0], n);
      if (activation == FusedActivation::relu) gz = eltwise_backward(EltwiseKind::relu, gz, as_matrix(out, n));
      std::vector<Tensor> grads(bias.defined() ? 3 : 2);
      if (autograd::needs_input_grad(0)) {
        Tensor gx = matmul(gz, transpose(w));
        grads[0] = gx.shape() == x.shape() && !autograd::observing() ? gx : reshape(gx, x.shape());
      }
      if (autograd::needs_input_grad(1)) grads[1] = matmul(transpose(as_matrix(x, k)), gz);
      if (bias.defined() && autograd::needs_input_grad(2)) grads[2] = cast(reduce_sum(gz, {0}), bias.dtype());
      return grads;
    });
  }
  return out;
}

}  // namespace kiln
