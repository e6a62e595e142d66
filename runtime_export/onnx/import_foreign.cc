// Ops that other exporters (torch.onnx.export above all) write and Kiln's own exporter does not:
// Flatten, Gemm's alpha/beta/transposes, Dropout at inference and Constant nodes.
#include <stdexcept>

#include "runtime_export/onnx/importer.h"
#include "tensor/ops/cast.h"

namespace kiln::runtime_export::onnx_io {

// Whether reshaping the Kiln value behind `x` reads its elements in ONNX's row-major order:
// true when the non-unit axes keep their relative order through the permutation (an NHWC
// [N, 1, 1, C] before Flatten, say), so no transpose is needed between ops.
bool Importer::same_element_order(const Ref& x) {
  const Shape s = shape_of(x);
  int last = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == 1) continue;
    if (x.perm[i] < last) return false;
    last = x.perm[i];
  }
  return true;
}

void Importer::flatten(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 1, 1);
  Ref x = ref(n.input(0));
  const int r = rank_of(x);
  const int64_t ax = a.get_int("axis", 1);
  if (ax < -r || ax > r) fail("Flatten axis " + std::to_string(ax) + " is out of range for rank " + std::to_string(r));
  a.done();
  const int64_t split = ax < 0 ? ax + r : ax;
  const Shape s = shape_of(x);
  int64_t outer = 1, inner = 1;
  bool batch_outer = false;
  for (int i = 0; i < r; ++i) {
    if (s[i] == kBatch) {
      if (i != 0 || split != 1) fail("Flatten axis " + std::to_string(ax) + " of " + shape_str(s) + " would fold the batch into another dimension");
      batch_outer = true;
      continue;
    }
    int64_t& part = i < split ? outer : inner;
    part *= s[i];  // bounded: the value's shape was checked when it was made
  }
  int xv = x.value >= 0 && same_element_order(x) ? x.value : materialize(x, identity_perm(r));
  const graph::Value& in = g_.values[xv];
  // 0 copies Kiln's dimension 0, which holds the batch whenever the batch is outer.
  std::vector<int64_t> target{batch_outer ? 0 : outer, inner};
  Shape out{batch_outer ? kBatch : outer, inner};
  define(n.output(0), add_node(ops::Attrs("reshape").set("shape", target), {xv}, nhwc_name(n.output(0)), out, in.dtype),
         identity_perm(2));
}

// A constant scaled by `factor`, named after it: Gemm's alpha and beta fold into B and C.
Ref Importer::scaled_constant(const Ref& c, float factor, const char* what) {
  if (factor == 1.f) return c;
  if (c.value >= 0) fail(std::string("Gemm ") + what + " != 1 needs a constant operand to fold into");
  const Tensor& t = init_tensor(c.init);
  if (t.dtype() != DType::f32) fail(std::string("Gemm ") + what + " with a " + dtype_name(t.dtype()) + " operand");
  std::vector<float> v = t.to_vector();
  for (float& e : v) e *= factor;
  std::string name = c.init + "_times_" + what;
  if (!init_tensors_.count(name)) {
    init_tensors_[name] = Tensor::from_vector(v, t.shape());
    inits_[name] = inits_.at(c.init);
  }
  return Ref{-1, name, c.perm};
}

// Y = alpha * op(A) op(B) + beta * C as Kiln's linear: the transposes ride on the operands'
// permutations (folded into constants), alpha into B and beta into C.
void Importer::gemm(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 2, 3);
  const float alpha = a.get_float("alpha", 1.f), beta = a.get_float("beta", 1.f);
  const bool trans_a = a.get_int("transA", 0) != 0, trans_b = a.get_int("transB", 0) != 0;
  a.done();
  Ref x = ref(n.input(0)), w = ref(n.input(1));
  if (rank_of(x) != 2 || rank_of(w) != 2) fail("Gemm of " + shape_str(shape_of(x)) + " and " + shape_str(shape_of(w)) + " (both must be 2-D)");
  w = scaled_constant(w, alpha, "alpha");
  int xv = materialize(x, trans_a ? Perm{1, 0} : Perm{});
  int wv = materialize(w, trans_b ? Perm{1, 0} : Perm{});
  const Shape xs = g_.values[xv].shape, ws = g_.values[wv].shape;
  if (xs[1] != ws[0]) fail("Gemm of " + shape_str(xs) + " and " + shape_str(ws) + " (after transA/transB)");
  if (xs[1] == kBatch) fail("transA=1 would contract over the batch dimension");
  std::vector<int> ins{xv, wv};
  if (n.input_size() == 3 && !n.input(2).empty()) {
    Ref c = ref(n.input(2));
    const Shape cs = shape_of(c);
    if (cs != Shape{ws[1]} && cs != Shape{1, ws[1]}) {
      fail("Gemm C " + shape_str(cs) + " is not [" + std::to_string(ws[1]) + "] or [1, " + std::to_string(ws[1]) + "]");
    }
    c = scaled_constant(c, beta, "beta");
    int bv = materialize(c);
    if (cs.size() == 2) {
      bv = add_node(ops::Attrs("reshape").set("shape", std::vector<int64_t>{ws[1]}), {bv}, g_.values[bv].name + "_bias",
                    Shape{ws[1]}, g_.values[bv].dtype);
    }
    ins.push_back(bv);
  }
  for (int i : ins) {
    if (g_.values[i].dtype != DType::f32) fail("Gemm input '" + g_.values[i].name + "' is not FLOAT");
  }
  define(n.output(0), add_node(ops::Attrs("linear").set("activation", "none"), ins, n.output(0), {xs[0], ws[1]}, DType::f32),
         identity_perm(2));
}

// Dropout at inference is the identity; a training-mode Dropout or a requested mask is refused.
void Importer::dropout(const onnx::NodeProto& n, NodeAttrs& a) {
  if (n.input_size() < 1 || n.input_size() > 3 || n.output_size() < 1 || n.output_size() > 2) {
    fail("Dropout takes 1 to 3 inputs and 1 or 2 outputs");
  }
  a.get_int("seed", 0);  // only drawn in training mode
  a.done();
  if (n.output_size() == 2 && !n.output(1).empty()) fail("Dropout's mask output is not supported (inference only)");
  if (n.input_size() == 3 && !n.input(2).empty()) {
    auto it = inits_.find(n.input(2));
    if (it == inits_.end()) fail("Dropout training_mode '" + n.input(2) + "' must be a constant");
    const Tensor& t = init_tensor(n.input(2));
    if (t.numel() != 1 || load_element(t.raw_data(), t.dtype(), 0) != 0) fail("Dropout with training_mode=true is not supported");
  }
  Ref x = ref(n.input(0));
  if (x.value < 0) x = Ref{materialize(x), "", identity_perm(rank_of(x))};
  define(n.output(0), x.value, x.perm);
}

// A Constant becomes an initializer, so Reshape shapes and Clip bounds read it as they read those.
void Importer::constant(const onnx::NodeProto& n, NodeAttrs& a) {
  if (n.input_size() != 0 || n.output_size() != 1) fail("Constant takes no inputs and one output");
  const std::string& out = n.output(0);
  if (out.empty() || refs_.count(out) || inits_.count(out)) fail("Constant redefines '" + out + "'");
  onnx::TensorProto t;
  if (a.has("value")) {
    for (const auto& attr : n.attribute()) {
      if (attr.name() == "value") {
        if (attr.type() != onnx::AttributeProto::TENSOR) fail("attribute 'value' is not a TENSOR");
        t = attr.t();
      }
    }
    a.mark_used("value");
  } else if (a.has("value_float")) {
    t.set_data_type(onnx::TensorProto::FLOAT);
    t.add_float_data(a.get_float("value_float", 0.f));
  } else if (a.has("value_int")) {
    t.set_data_type(onnx::TensorProto::INT64);
    t.add_int64_data(a.get_int("value_int", 0));
  } else if (a.has("value_floats")) {
    t.set_data_type(onnx::TensorProto::FLOAT);
    for (float f : a.get_floats("value_floats")) t.add_float_data(f);
    t.add_dims(t.float_data_size());
  } else if (a.has("value_ints")) {
    t.set_data_type(onnx::TensorProto::INT64);
    for (int64_t i : a.get_ints("value_ints", {})) t.add_int64_data(i);
    t.add_dims(t.int64_data_size());
  } else {
    fail("Constant without a value, value_float(s) or value_int(s) attribute (sparse and string constants are not supported)");
  }
  a.done();
  t.set_name(out);
  owned_constants_.push_back(std::move(t));
  inits_[out] = &owned_constants_.back();
  // Decoded now, so that a malformed constant is reported at this node.
  if (owned_constants_.back().data_type() == onnx::TensorProto::INT64) int64_values(owned_constants_.back());
  else init_tensor(out);
}

// A Cast of a constant to a float type stays a constant (torch writes Clip's bounds as
// Constant -> Cast), so that ops reading constant inputs still see one.
void Importer::cast_constant(const Ref& x, DType to, const std::string& output) {
  if (output.empty() || refs_.count(output) || inits_.count(output)) fail("Cast redefines '" + output + "'");
  Tensor t = kiln::cast(is_identity(x.perm) ? init_tensor(x.init) : permuted_copy(init_tensor(x.init), x.perm), to).clone_detached();
  owned_constants_.emplace_back();
  to_tensor_proto(t, output, &owned_constants_.back());
  inits_[output] = &owned_constants_.back();
  init_tensors_[output] = t;
}

}  // namespace kiln::runtime_export::onnx_io
