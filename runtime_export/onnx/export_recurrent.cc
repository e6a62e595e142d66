// lstm, gru and simple_rnn as ONNX's LSTM, GRU (linear_before_reset=1) and RNN (Tanh): Kiln's
// batch-first [B, T, I] goes time-major through a Transpose, Keras's weights are rewritten
// into ONNX's [1, gates * U, I] layout and gate order, and Y [T, 1, B, U] comes back
// batch-first; go_backwards is the reverse direction with Y gathered back into reading order.
#include "runtime_export/onnx/exporter.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/value_type.h"

namespace kiln::runtime_export::onnx_io {
namespace {

// ONNX gate g is Keras gate order[g]: LSTM iofc from Keras's ifco; GRU zrh in both.
std::vector<int> onnx_gate_order(ops::OpKind kind) {
  if (kind == ops::OpKind::lstm) return {0, 3, 1, 2};
  if (kind == ops::OpKind::gru) return {0, 1, 2};
  return {0};
}

// Keras's [rows, G*U] kernel as ONNX's [1, G*U, rows].
Tensor onnx_weights(const std::vector<float>& keras, int64_t rows, int64_t u, const std::vector<int>& order) {
  const int64_t g = static_cast<int64_t>(order.size()), gu = g * u;
  std::vector<float> out(gu * rows);
  for (int64_t k = 0; k < g; ++k)
    for (int64_t j = 0; j < u; ++j)
      for (int64_t r = 0; r < rows; ++r) out[(k * u + j) * rows + r] = keras[r * gu + order[k] * u + j];
  return Tensor::from_vector(out, {1, gu, rows});
}

}  // namespace

void Exporter::write_rnn(const Node& n) {
  const ops::OpKind kind = n.call.kind();
  const ops::RnnAttrs a = ops::parse_attrs<ops::RnnAttrs>(n.call);
  const bool lstm = kind == ops::OpKind::lstm;
  const size_t states = !a.initial_state ? 0 : lstm ? 2 : 1;
  if (n.inputs.size() > 4 + states) {
    fail("a masked recurrent layer is not exported: ONNX's sequence_lens gives zeros after a sequence's end where "
         "Keras carries the state, and has no padding before it");
  }
  const int x = n.inputs[0];
  if (val(x).dtype != DType::f32) fail("recurrent layers export in f32, got input " + ops::describe({val(x).dtype, val(x).shape}));
  std::vector<std::vector<float>> weights;
  for (int k = 1; k <= 3; ++k) {
    const int v = n.inputs[k];
    if (!const_[v]) fail("the kernel, recurrent kernel and bias must be constants (the layer's weights); '" + val(v).name + "' is computed");
    weights.push_back(cast(const_[v]->tensor, DType::f32).to_vector());
  }
  const std::vector<int> order = onnx_gate_order(kind);
  const int64_t g = static_cast<int64_t>(order.size()), in = val(n.inputs[1]).shape[0];
  const int64_t u = val(n.inputs[1]).shape[1] / g;
  std::vector<float> bias(2 * g * u, 0.f);
  const std::vector<float>& kb = weights[2];
  if (kind == ops::OpKind::gru) {
    std::copy(kb.begin(), kb.end(), bias.begin());  // input then recurrent biases, z r h each
  } else {
    for (int64_t k = 0; k < g; ++k) std::copy_n(kb.begin() + order[k] * u, u, bias.begin() + k * u);
  }
  const std::string w = initializer(onnx_weights(weights[0], in, u, order), name_[n.inputs[1]] + "_onnx");
  const std::string r = initializer(onnx_weights(weights[1], u, u, order), name_[n.inputs[2]] + "_onnx");
  const std::string b = initializer(Tensor::from_vector(bias, {1, 2 * g * u}), name_[n.inputs[3]] + "_onnx");

  // Only Transpose, Reshape and Gather around the cell, which Kiln's importer folds back.
  const int64_t t = val(x).shape[1];
  std::string seq = tmp("time_major");
  set_attr(emit("Transpose", {native(x)}, {seq}), "perm", std::vector<int64_t>{1, 0, 2});
  std::vector<std::string> ins{seq, w, r, b};
  if (states) {
    ins.push_back("");  // sequence_lens
    for (size_t k = 0; k < states; ++k) {
      std::string s = tmp("initial_state"), s3 = tmp("initial_state_b1u");
      emit("Reshape", {native(n.inputs[4 + k]), int64s({0, 1, u})}, {s3});
      set_attr(emit("Transpose", {s3}, {s}), "perm", std::vector<int64_t>{1, 0, 2});
      ins.push_back(s);
    }
  }
  std::vector<std::string> outs{tmp("y"), tmp("y_h")};
  if (lstm) outs.push_back(tmp("y_c"));
  const char* op = lstm ? "LSTM" : kind == ops::OpKind::gru ? "GRU" : "RNN";
  auto* node = emit(op, ins, outs);
  set_attr(node, "hidden_size", u);
  if (kind == ops::OpKind::gru) set_attr(node, "linear_before_reset", int64_t{1});
  std::string btu = tmp("y_batch_first"), y = tmp("y_reshaped");
  set_attr(emit("Transpose", {outs[0]}, {btu}), "perm", std::vector<int64_t>{2, 0, 1, 3});
  if (!a.go_backwards) {
    emit("Reshape", {btu, int64s({0, t, u})}, {out(n.outputs[0], false)});
  } else {
    // ONNX's reverse direction leaves Y at the input's positions; Keras's is in reading order
    // (gathered on the batch-first value, where the importer keeps the batch leading).
    auto* d = node->add_attribute();
    d->set_name("direction");
    d->set_type(onnx::AttributeProto::STRING);
    d->set_s("reverse");
    emit("Reshape", {btu, int64s({0, t, u})}, {y});
    std::vector<int64_t> last_first;
    for (int64_t k = t - 1; k >= 0; --k) last_first.push_back(k);
    set_attr(emit("Gather", {y, int64s(last_first)}, {out(n.outputs[0], false)}), "axis", int64_t{1});
  }
  for (size_t k = 1; k < n.outputs.size(); ++k) {
    std::string b1u = tmp("state_batch_first");
    set_attr(emit("Transpose", {outs[k]}, {b1u}), "perm", std::vector<int64_t>{1, 0, 2});
    emit("Reshape", {b1u, int64s({0, u})}, {out(n.outputs[k], false)});
  }
}

}  // namespace kiln::runtime_export::onnx_io
