// Where, Not, And, Or, Xor, the comparisons, Erf and Cast to BOOL on values computed at run time
// (PyTorch's masked_fill and torch.where, an attention mask fed as a model input); the same ops
// on values known at import time fold in import_shape.cc instead. Kiln's booleans are 1/0 in
// f32: an ONNX BOOL value is such a value (a BOOL model input is u8, cast to f32 where it is
// read), and INT64/INT32 operands (token ids, an int64 attention mask) are compared in f32,
// exactly for integers up to 2^24 in magnitude.
#include <map>

#include "runtime_export/onnx/importer.h"

namespace kiln::runtime_export::onnx_io {

// The ONNX value `name` as an f32 Kiln value in ONNX's own axis order.
int Importer::float_operand(const std::string& name) {
  const bool computed = refs_.count(name) || views_.count(name) || dequantized_.count(name);
  const auto init = inits_.find(name);
  const bool plain_init = init != inits_.end() && init->second->data_type() != onnx::TensorProto::INT64 &&
                          init->second->data_type() != onnx::TensorProto::BOOL;
  if (!computed && !plain_init && is_folded(name)) {
    // INT64 and BOOL constants, and values folded at import time: an f32 constant.
    const Folded f = folded(name);
    if (f.has_batch()) fail("'" + name + "' depends on the batch size and is used as data");
    std::vector<float> values;
    if (f.real) {
      for (double v : f.reals) values.push_back(static_cast<float>(v));
    } else {
      for (int64_t v : f.static_ints(name)) values.push_back(static_cast<float>(v));
    }
    const std::string key = name + "/f32";
    if (!init_tensors_.count(key)) {
      init_tensors_[key] = Tensor::from_vector(values, f.shape);
      owned_constants_.emplace_back();
      inits_[key] = &owned_constants_.back();
    }
    return materialize(Ref{-1, key, identity_perm(static_cast<int>(f.shape.size()))});
  }
  const int v = materialize(ref(name));
  const graph::Value in = g_.values[v];  // a copy: add_node grows g_.values
  if (in.dtype == DType::f32) return v;
  if (in.dtype == DType::bf16) fail("'" + name + "' is bf16; the importer works in f32");
  if (auto it = float_copy_.find(v); it != float_copy_.end()) return it->second;
  return float_copy_[v] = add_node(ops::Attrs("cast").set("dtype", "f32"), {v}, in.name + "_f32", in.shape, DType::f32);
}

bool Importer::is_float_value(const std::string& name) {
  if (refs_.count(name) || views_.count(name) || dequantized_.count(name)) return is_floating(dtype_of(ref(name))) && !booleans_.count(name);
  if (const auto init = inits_.find(name); init != inits_.end()) return init->second->data_type() == onnx::TensorProto::FLOAT;
  return is_folded(name) && folded(name).real;
}

int Importer::logical_node(const onnx::NodeProto& n) {
  static const std::map<std::string, const char*> kBinary = {
      {"And", "logical_and"}, {"Or", "logical_or"},   {"Equal", "equal"},           {"Less", "less"},
      {"Greater", "greater"}, {"GreaterOrEqual", "greater_equal"}, {"LessOrEqual", ""}, {"Xor", ""}};
  const std::string& op = n.op_type();
  const bool cast_to_bool = op == "Cast" && n.attribute_size() == 1 && n.attribute(0).name() == "to" &&
                            n.attribute(0).type() == onnx::AttributeProto::INT && n.attribute(0).i() == onnx::TensorProto::BOOL;
  if (!kBinary.count(op) && op != "Where" && op != "Not" && op != "Erf" && !cast_to_bool) return 0;
  NodeAttrs a(n, where_);
  if (cast_to_bool) a.get_int("to", 0);
  a.done();
  auto emit = [&](const char* kind, const std::vector<int>& ins, const std::string& output) {
    Shape s = g_.values[ins[0]].shape;
    for (size_t i = 1; i < ins.size(); ++i) s = broadcast(s, g_.values[ins[i]].shape, where_);
    const int v = add_node(ops::Attrs(kind), ins, output, s, DType::f32);
    return v;
  };
  auto result = [&](int v, bool boolean) {
    define(n.output(0), v, identity_perm(static_cast<int>(g_.values[v].shape.size())));
    if (boolean) booleans_.insert(n.output(0));
  };
  if (op == "Where") {
    want_inputs(n, 3, 3);
    for (int i : {1, 2}) {
      if (!is_float_value(n.input(i))) fail("Where selects among non-FLOAT values ('" + n.input(i) + "'); Kiln's where takes float values");
    }
    const int c = float_operand(n.input(0)), x = float_operand(n.input(1)), y = float_operand(n.input(2));
    result(emit("where", {c, x, y}, n.output(0)), false);
  } else if (op == "Erf") {
    want_inputs(n, 1, 1);
    result(emit("erf", {float_operand(n.input(0))}, n.output(0)), false);
  } else if (op == "Not") {
    want_inputs(n, 1, 1);
    result(emit("logical_not", {float_operand(n.input(0))}, n.output(0)), true);
  } else if (cast_to_bool) {
    want_inputs(n, 1, 1);
    const int x = float_operand(n.input(0));
    if (booleans_.count(n.input(0))) {
      result(x, true);  // 1/0 already
    } else {  // nonzero -> 1: not(not(x))
      result(emit("logical_not", {emit("logical_not", {x}, n.output(0) + "/not")}, n.output(0)), true);
    }
  } else {
    want_inputs(n, 2, 2);
    const int x = float_operand(n.input(0)), y = float_operand(n.input(1));
    if (op == "LessOrEqual") {  // less or equal, so that NaN compares false as in ONNX
      result(emit("logical_or", {emit("less", {x, y}, n.output(0) + "/less"), emit("equal", {x, y}, n.output(0) + "/equal")},
                  n.output(0)),
             true);
    } else if (op == "Xor") {
      result(emit("logical_not", {emit("equal", {emit("logical_not", {x}, n.output(0) + "/x"),
                                                  emit("logical_not", {y}, n.output(0) + "/y")},
                                       n.output(0) + "/same")},
                  n.output(0)),
             true);
    } else {
      result(emit(kBinary.at(op), {x, y}, n.output(0)), true);
    }
  }
  return 1;
}

}  // namespace kiln::runtime_export::onnx_io
