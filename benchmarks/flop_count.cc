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
    default:
      // Not a GEMM-class op: counted as no FLOPs (a default rather than a case per kind, so
      // that a new op needs no decision here; a new GEMM-class op adds its case above).
      return 0;
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
    for (size_t i = 0; i < 2 && i < n.inputs.size(); ++i) {
      if (needs_grad[n.inputs[i]]) f.backward += fwd;
    }
  }
  return f;
}

}  // namespace kiln::bench
