#include "benchmarks/flop_count.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/ops/attrs.h"
#include "tensor/ops/op_kind.h"

namespace kiln::bench {
namespace {

double elements(const graph::Value& v, int64_t batch) {
  double n = 1;
  for (int64_t d : v.shape) n *= d == graph::kBatch ? batch : d;
  return n;
}

// Forward FLOPs of a GEMM-class node, 0 for every other op. Every form is 2 x (output
// positions) x (multiply-adds per position), read off the shapes so that the kernel's layout
// (HWIO, grouped, depthwise) does not matter: a convolution does one multiply-add per kernel
// element for each output pixel of its group, a linear one per weight for each row.
double gemm_flops(const graph::Graph& g, const graph::Node& n, int64_t batch) {
  using ops::OpKind;
  const OpKind kind = n.call.kind();
  // Only read by the GEMM-class cases, whose ops take at least two inputs (Graph::validate).
  auto out = [&]() -> const graph::Value& { return g.values[n.outputs[0]]; };
  auto w = [&]() -> const graph::Value& { return g.values[n.inputs[1]]; };
  switch (kind) {
    case OpKind::conv2d:
    case OpKind::fused_conv2d:
    case OpKind::qconv2d: {
      // out [N, OH, OW, O], w [KH, KW, C / groups, O]: each output element takes KH*KW*C/groups
      // multiply-adds, i.e. elements(w) / O.
      const double per_output = elements(w(), batch) / static_cast<double>(out().shape.back());
      return 2.0 * elements(out(), batch) * per_output;
    }
    case OpKind::linear:
    case OpKind::fused_linear:
    case OpKind::qlinear:
    case OpKind::matmul: {
      // out [..., M, N]: each output element takes K multiply-adds, K the inner dimension of the
      // second operand ([..., K, N]).
      const Shape& ws = w().shape;
      const int64_t k_dim = ws.size() >= 2 ? ws[ws.size() - 2] : ws.empty() ? 1 : ws[0];
      const double k = static_cast<double>(k_dim == graph::kBatch ? batch : k_dim);
      return 2.0 * elements(out(), batch) * k;
    }
    case OpKind::scaled_dot_product_attention: {
      // q [..., T, dk], k [..., S, dk], v [..., S, dv]: the scores q k^T take T*S*dk
      // multiply-adds per head, the weighted sum of v T*S*dv.
      const Shape& q = g.values[n.inputs[0]].shape;
      const Shape& v = g.values[n.inputs[2]].shape;
      const double heads_by_queries = elements(g.values[n.inputs[0]], batch) / static_cast<double>(q.back());
      const double keys = static_cast<double>(v[v.size() - 2]);
      return 2.0 * heads_by_queries * keys * static_cast<double>(q.back() + v.back());
    }
    case OpKind::lstm:
    case OpKind::gru:
    case OpKind::simple_rnn: {
      // x [N, T, F], kernel [F, G*U], recurrent_kernel [U, G*U]: each step of each row
      // multiplies the input by the kernel and the state by the recurrent kernel.
      const Shape& x = g.values[n.inputs[0]].shape;
      const double rows_by_steps = elements(g.values[n.inputs[0]], batch) / static_cast<double>(x.back());
      return 2.0 * rows_by_steps * (elements(w(), batch) + elements(g.values[n.inputs[2]], batch));
    }
    default:
      // Not a GEMM-class op: counted as no FLOPs (a default rather than a case per kind, so
      // that a new op needs no decision here; a new GEMM-class op adds its case above).
      return 0;
  }
}

// The backward FLOPs of a node whose forward costs `fwd`.
double backward_flops(const graph::Graph& g, const graph::Node& n, double fwd, const std::vector<bool>& needs_grad) {
  using ops::OpKind;
  auto grad = [&](size_t i) { return i < n.inputs.size() && needs_grad[n.inputs[i]]; };
  switch (n.call.kind()) {
    case OpKind::scaled_dot_product_attention:
      // Four products as large as the forward's two: dP = dO v^T and dv = P^T dO (the forward's
      // second), dq = dS k and dk = dS^T q (its first).
      return grad(0) || grad(1) || grad(2) ? 2.0 * fwd : 0;
    case OpKind::lstm:
    case OpKind::gru:
    case OpKind::simple_rnn: {
      // The weights' gradients (as much as the forward), the state's gradient through the
      // recurrent kernel at every step, and the input's gradient when the input needs one.
      if (!(grad(0) || grad(1) || grad(2))) return 0;
      const double kernel = elements(g.values[n.inputs[1]], 1), recurrent = elements(g.values[n.inputs[2]], 1);
      const double per_weight = fwd / (kernel + recurrent);
      return fwd + per_weight * recurrent + (grad(0) ? per_weight * kernel : 0);
    }
    default: {
      double f = 0;
      for (size_t i = 0; i < 2; ++i) {
        if (grad(i)) f += fwd;
      }
      return f;
    }
  }
}

}  // namespace

StepFlops count_step_flops(const graph::Graph& g, int64_t batch) {
  if (batch < 1) throw std::invalid_argument("count_step_flops: batch must be >= 1, got " + std::to_string(batch));
  // needs_grad[v]: v depends on a model variable, so a training step computes its gradient.
  std::vector<bool> needs_grad(g.values.size(), false);
  for (const graph::Constant& c : g.constants) {
    if (c.is_variable) needs_grad[c.value] = true;
  }
  StepFlops f;
  for (const graph::Node& n : g.nodes) {
    bool any = false;
    for (int in : n.inputs) any = any || needs_grad[in];
    for (int out : n.outputs) needs_grad[out] = any;
    const double fwd = gemm_flops(g, n, batch);
    if (fwd == 0) continue;
    f.forward += fwd;
    f.backward += backward_flops(g, n, fwd, needs_grad);
  }
  return f;
}

}  // namespace kiln::bench
