// ONNX LSTM, GRU (linear_before_reset=1) and RNN (Tanh) as Kiln's lstm, gru and simple_rnn:
// one direction, layout 0, constant W, R and B rewritten into Keras's layouts; the Transposes
// and Reshapes export_recurrent.cc writes around them fold back into the node's views.
#include "runtime_export/onnx/importer.h"

namespace kiln::runtime_export::onnx_io {
namespace {

// ONNX gate g is Keras gate order[g] (export_recurrent.cc).
std::vector<int> keras_gate_of(ops::OpKind kind) {
  if (kind == ops::OpKind::lstm) return {0, 3, 1, 2};
  if (kind == ops::OpKind::gru) return {0, 1, 2};
  return {0};
}

}  // namespace

void Importer::recurrent(const onnx::NodeProto& n, NodeAttrs& a) {
  const std::string& type = n.op_type();
  const ops::OpKind kind = type == "LSTM" ? ops::OpKind::lstm : type == "GRU" ? ops::OpKind::gru : ops::OpKind::simple_rnn;
  const bool lstm = kind == ops::OpKind::lstm;
  const std::vector<int> order = keras_gate_of(kind);
  const int64_t g = static_cast<int64_t>(order.size());
  if (n.input_size() < 3 || n.input_size() > (lstm ? 8 : 6)) fail("takes 3 to " + std::to_string(lstm ? 8 : 6) + " inputs, got " + std::to_string(n.input_size()));
  if (n.output_size() > (lstm ? 3 : 2)) fail("has " + std::to_string(n.output_size()) + " outputs");
  const int64_t u = a.get_int("hidden_size", -1);
  if (u <= 0 || u > kMaxSpatial) fail("hidden_size " + std::to_string(u) + " must be set and positive");
  const std::string direction = a.get_string("direction", "forward");
  if (direction != "forward" && direction != "reverse") fail("direction '" + direction + "' is not supported (forward or reverse; a bidirectional layer imports as two)");
  if (a.get_int("layout", 0) != 0) fail("layout 1 (batch-major) is not supported");
  if (kind == ops::OpKind::gru && a.get_int("linear_before_reset", 0) != 1) {
    fail("GRU with linear_before_reset=0 is not supported (Kiln's GRU is Keras's reset_after=True)");
  }
  if (lstm && a.get_int("input_forget", 0) != 0) fail("input_forget=1 is not supported");
  a.done();  // activations, clip and the rest: refused by name
  auto present = [&](int i) { return n.input_size() > i && !n.input(i).empty(); };
  if (present(4)) fail("sequence_lens is not supported (Kiln's recurrent layers take Keras masks)");
  if (present(7)) fail("peephole weights P are not supported");

  Ref x = ref(n.input(0));
  if (rank_of(x) != 3 || dtype_of(x) != DType::f32) fail("X must be FLOAT [T, B, I], got " + shape_str(shape_of(x)));
  const Shape xs = shape_of(x);
  const int64_t t = xs[0], in = xs[2];
  if (t < 0 || in < 0) fail("X " + shape_str(xs) + " needs a static time and feature size");
  auto weights = [&](int i, int64_t cols, const char* what) {
    if (!inits_.count(n.input(i))) fail(std::string(what) + " '" + n.input(i) + "' must be an initializer");
    Tensor w = init_tensor(n.input(i));
    if (w.dtype() != DType::f32 || w.shape() != Shape{1, g * u, cols}) {
      fail(std::string(what) + " is " + w.describe() + ", expected FLOAT " + shape_str({1, g * u, cols}));
    }
    std::vector<float> v = w.to_vector(), keras(v.size());
    for (int64_t k = 0; k < g; ++k)
      for (int64_t j = 0; j < u; ++j)
        for (int64_t c = 0; c < cols; ++c) keras[c * g * u + order[k] * u + j] = v[(k * u + j) * cols + c];
    return Tensor::from_vector(keras, {cols, g * u});
  };
  auto constant = [&](const Tensor& tensor, const std::string& name) {
    int v = add_value(name, tensor.shape(), tensor.dtype());
    g_.constants.push_back({v, false, tensor});
    return v;
  };
  std::vector<float> onnx_bias(2 * g * u, 0.f);
  if (present(3)) {
    if (!inits_.count(n.input(3))) fail("B '" + n.input(3) + "' must be an initializer");
    Tensor b = init_tensor(n.input(3));
    if (b.dtype() != DType::f32 || b.shape() != Shape{1, 2 * g * u}) fail("B is " + b.describe() + ", expected FLOAT " + shape_str({1, 2 * g * u}));
    onnx_bias = b.to_vector();
  }
  Tensor bias;
  if (kind == ops::OpKind::gru) {
    bias = Tensor::from_vector(onnx_bias, {2, 3 * u});
  } else {
    std::vector<float> keras(g * u);
    for (int64_t k = 0; k < g; ++k)
      for (int64_t j = 0; j < u; ++j) keras[order[k] * u + j] = onnx_bias[k * u + j] + onnx_bias[(g + k) * u + j];
    bias = Tensor::from_vector(keras, {g * u});
  }
  const std::string base = n.name().empty() ? type : n.name();
  std::vector<int> ins{materialize(x, {1, 0, 2}), constant(weights(1, in, "W"), base + "_kernel"),
                       constant(weights(2, u, "R"), base + "_recurrent_kernel"), constant(bias, base + "_bias")};
  const int64_t batch = g_.values[ins[0]].shape[0];
  const int states = present(5) + (lstm && present(6));
  if (lstm && present(5) != present(6)) fail("give both initial_h and initial_c or neither");
  for (int k = 0; k < states; ++k) {
    Ref s = ref(n.input(5 + k));
    if (shape_of(s) != Shape{1, batch, u}) fail("initial state is " + shape_str(shape_of(s)) + ", expected " + shape_str({1, batch, u}));
    int b1u = materialize(s, {1, 0, 2});
    ins.push_back(add_node(ops::Attrs("reshape").set("shape", std::vector<int64_t>{0, u}), {b1u}, base + "_state", {batch, u}, DType::f32));
  }
  ops::Attrs call(kind);
  call.set("initial_state", states > 0).set("go_backwards", direction == "reverse").set("zero_output_for_mask", false);
  if (!onnx_import_support(kind).supported) throw std::logic_error(where_ + ": " + call.op() + " import ruled out");
  std::vector<int> outs{add_value(base + "_sequence", {batch, t, u}, DType::f32), add_value(base + "_h", {batch, u}, DType::f32)};
  if (lstm) outs.push_back(add_value(base + "_c", {batch, u}, DType::f32));
  g_.nodes.push_back({call, ins, outs});

  if (n.output_size() > 0 && !n.output(0).empty()) {
    int seq = outs[0];
    if (direction == "reverse") {
      // Kiln's go_backwards gives reading order; ONNX's Y sits at the input's positions.
      std::vector<int32_t> last_first;
      for (int64_t k = t - 1; k >= 0; --k) last_first.push_back(static_cast<int32_t>(k));
      int ids = constant(Tensor::from_int32(last_first, {t}), base + "_reverse");
      seq = add_node(ops::Attrs("gather").set("axis", 1), {seq, ids}, base + "_positions", {batch, t, u}, DType::f32);
    }
    int bt1u = add_node(ops::Attrs("reshape").set("shape", std::vector<int64_t>{0, t, 1, u}), {seq}, n.output(0),
                        {batch, t, 1, u}, DType::f32);
    define(n.output(0), bt1u, {1, 2, 0, 3});  // ONNX [T, 1, B, U]
  }
  for (int k = 1; k < n.output_size(); ++k) {
    if (n.output(k).empty()) continue;
    int b1u = add_node(ops::Attrs("reshape").set("shape", std::vector<int64_t>{0, 1, u}), {outs[k]}, n.output(k),
                       {batch, 1, u}, DType::f32);
    define(n.output(k), b1u, {1, 0, 2});  // ONNX [1, B, U]
  }
}

}  // namespace kiln::runtime_export::onnx_io
