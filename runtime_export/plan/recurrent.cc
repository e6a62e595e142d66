// lstm, gru and simple_rnn at a small batch: Kiln's kernel (tensor/ops/rnn_small_batch.h) on
// weights prepared once at plan build, reading x and the initial states from the plan's
// buffers and writing the sequence and the final states straight into its slots. Anything
// else (a mask, go_backwards, bf16, weights that are inputs, more rows than the kernel wins
// at, shapes the op would refuse) declines to the eager op, which names bad input.
#include <vector>

#include "runtime_export/plan/builder.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/rnn_small_batch.h"

namespace kiln::runtime_export::plan_detail {
namespace {

using rnn_detail::RnnCell;

RnnCell cell_of(ops::OpKind kind) {
  return kind == ops::OpKind::lstm ? RnnCell::lstm : kind == ops::OpKind::gru ? RnnCell::gru : RnnCell::simple_rnn;
}

Tensor f32_of(const Tensor& t) { return (t.dtype() == DType::f32 ? t : kiln::cast(t, DType::f32)).clone_detached(); }

}  // namespace

bool Builder::recurrent(const graph::Node& n) {
  const RnnCell cell = cell_of(n.call.kind());
  const ops::RnnAttrs a = ops::parse_attrs<ops::RnnAttrs>(n.call);
  const bool lstm = rnn_detail::has_cell_state(cell);
  const size_t states = a.initial_state ? (lstm ? 2 : 1) : 0;
  if (a.go_backwards || n.inputs.size() != 4 + states || n.outputs.size() != (lstm ? 3u : 2u)) return false;
  for (int j = 1; j < 4; ++j) {
    if (!constant(n.inputs[j])) return false;
  }
  for (int v : n.inputs) {
    if (t(value_[v]).dtype != DType::f32 || g_.values[v].dtype != DType::f32) return false;
  }
  const Shape xs = t(value_[n.inputs[0]]).shape;
  const Tensor kernel = t(value_[n.inputs[1]]).constant, recurrent = t(value_[n.inputs[2]]).constant;
  const Tensor bias = t(value_[n.inputs[3]]).constant;
  const int gates = rnn_detail::gate_count(cell);
  if (xs.size() != 3 || xs[0] < 1 || xs[1] < 1 || kernel.ndim() != 2 || kernel.shape()[0] != xs[2] ||
      kernel.shape()[1] % gates != 0 || kernel.shape()[1] == 0) {
    return false;
  }
  const int64_t rows = xs[0], steps = xs[1], u = kernel.shape()[1] / gates;
  const Shape keras_bias = cell == RnnCell::lstm ? Shape{4 * u} : cell == RnnCell::gru ? Shape{2, 3 * u} : Shape{u};
  if (recurrent.shape() != Shape{u, gates * u} || bias.shape() != keras_bias) return false;
  for (size_t j = 0; j < states; ++j) {
    if (t(value_[n.inputs[4 + j]]).shape != Shape{rows, u}) return false;
  }
  if (!rnn_detail::small_batch_rnn_wins(cell, rows, u)) return false;

  auto weights = std::make_shared<rnn_detail::SmallBatchRnnWeights>(rnn_detail::prepare_small_batch_rnn(
      cell, {f32_of(kernel), f32_of(recurrent), rnn_detail::onednn_bias(cell, f32_of(bias), u)}));
  Step s;
  s.kind = "small-batch " + n.call.op();
  s.reads.push_back(p_.as_plain(value_[n.inputs[0]], DType::f32));
  for (size_t j = 0; j < states; ++j) s.reads.push_back(p_.as_plain(value_[n.inputs[4 + j]], DType::f32));
  const std::vector<Shape> out_shapes = lstm ? std::vector<Shape>{{rows, steps, u}, {rows, u}, {rows, u}}
                                             : std::vector<Shape>{{rows, steps, u}, {rows, u}};
  for (size_t j = 0; j < out_shapes.size(); ++j) {
    int o = p_.new_slot(out_shapes[j], DType::f32, plain_desc(out_shapes[j], DType::f32));
    s.writes.push_back(o);
    value_[n.outputs[j]] = o;
  }
  // Outputs nothing reads (the sequence, unless return_sequences; LSTM's c, unless
  // return_state) keep their slots but are not written.
  std::vector<bool> read(n.outputs.size());
  for (size_t j = 0; j < n.outputs.size(); ++j) read[j] = last_read_[n.outputs[j]] >= 0;
  s.kernel = [weights, rows, steps, states, read](const std::vector<void*>& in, const std::vector<void*>& out) {
    auto f = [&](size_t j) { return read[j] ? static_cast<float*>(out[j]) : nullptr; };
    rnn_detail::small_batch_rnn_run(*weights, static_cast<float*>(in[0]), rows, steps,
                                    states ? static_cast<float*>(in[1]) : nullptr,
                                    states > 1 ? static_cast<float*>(in[2]) : nullptr, f(0), f(1),
                                    out.size() > 2 ? f(2) : nullptr);
  };
  p_.steps.push_back(std::move(s));
  return true;
}

}  // namespace kiln::runtime_export::plan_detail
