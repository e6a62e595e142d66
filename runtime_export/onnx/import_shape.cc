// Shape subgraphs folded at import time: Shape, Gather, Unsqueeze, Concat and the integer
// arithmetic exporters write around them, ConstantOfShape, Range, Where, Equal, and the scalar
// float arithmetic that turns a shape into a scale (torch's attention: 1 / sqrt(head_dim)).
// Integers may be multiples of the batch (folded.h), so Reshape targets keep the batch free.
#include <cmath>
#include <set>

#include "runtime_export/onnx/importer.h"

namespace kiln::runtime_export::onnx_io {

namespace {

bool is_int_type(int32_t t) {
  return t == onnx::TensorProto::INT64 || t == onnx::TensorProto::INT32 || t == onnx::TensorProto::BOOL;
}
// Float constants folded only when this small: scalars and shape-sized vectors, never weights.
constexpr int64_t kMaxFoldedReals = 64;

Folded real_scalar_like(double v) {
  Folded f;
  f.real = true;
  f.reals = {v};
  return f;
}

}  // namespace

bool Importer::is_folded(const std::string& name) {
  if (name.empty()) return false;
  if (folded_values_.count(name)) return true;
  auto it = inits_.find(name);
  if (it == inits_.end()) return false;
  const onnx::TensorProto& p = *it->second;
  if (is_int_type(p.data_type())) return p.data_type() != onnx::TensorProto::BOOL || p.has_raw_data() || p.int32_data_size();
  if (p.data_type() != onnx::TensorProto::FLOAT) return false;
  int64_t n = 1;
  for (int64_t d : p.dims()) {
    if (d < 0 || d > kMaxFoldedReals) return false;
    n *= d;
  }
  return n <= kMaxFoldedReals;
}

Folded Importer::folded(const std::string& name) {
  if (auto it = folded_values_.find(name); it != folded_values_.end()) return it->second;
  const onnx::TensorProto& p = *inits_.at(name);
  Folded f;
  f.shape.assign(p.dims().begin(), p.dims().end());
  if (p.data_type() == onnx::TensorProto::INT64) {
    for (int64_t v : int64_values(p)) f.ints.push_back({v, false});
  } else if (p.data_type() == onnx::TensorProto::BOOL) {
    std::string bytes = p.raw_data();
    if (!p.has_raw_data()) {
      for (int32_t v : p.int32_data()) bytes.push_back(static_cast<char>(v != 0));
    }
    int64_t n = 1;
    for (int64_t d : f.shape) n *= d;  // bounded: compared with the bytes present next
    if (static_cast<int64_t>(bytes.size()) != n) fail("BOOL constant '" + name + "' holds " + std::to_string(bytes.size()) + " values for shape " + shape_str(f.shape));
    for (char c : bytes) f.ints.push_back({c != 0, false});
  } else {
    const Tensor& t = init_tensor(name);
    f.shape = t.shape();
    if (t.dtype() == DType::f32) {
      f.real = true;
      for (float v : t.to_vector()) f.reals.push_back(v);
    } else {
      for (int64_t i = 0; i < t.numel(); ++i) f.ints.push_back({static_cast<int64_t>(load_element(t.raw_data(), t.dtype(), i)), false});
    }
  }
  return f;
}

void Importer::define_folded(const std::string& name, Folded f) {
  if (name.empty() || refs_.count(name) || inits_.count(name) || folded_values_.count(name) || views_.count(name)) {
    fail("value '" + name + "' is defined twice");
  }
  if (f.numel() > kMaxFoldedElements) fail("a folded value above " + std::to_string(kMaxFoldedElements) + " elements");
  // Static results are initializers too, so that ops reading constant inputs (Slice, Expand,
  // Gather's indices, Clip's bounds) see them as they see a file's own.
  if (f.real) {
    std::vector<float> v(f.reals.begin(), f.reals.end());
    Tensor t = Tensor::from_vector(v, f.shape);
    owned_constants_.emplace_back();
    to_tensor_proto(t, name, &owned_constants_.back());
    inits_[name] = &owned_constants_.back();
    init_tensors_[name] = t;
    return;
  }
  if (!f.has_batch()) {
    std::vector<int64_t> v = f.static_ints(name);
    owned_constants_.push_back(int64_tensor_proto(v, name, f.shape.empty()));
    onnx::TensorProto& p = owned_constants_.back();
    p.clear_dims();
    for (int64_t d : f.shape) p.add_dims(d);
    inits_[name] = &p;
  }
  folded_values_[name] = std::move(f);
}

std::vector<SymInt> Importer::sym_shape(const std::string& name) {
  if (auto it = views_.find(name); it != views_.end()) return view_dims(it->second);
  if (is_folded(name)) {
    std::vector<SymInt> dims;
    for (int64_t d : folded(name).shape) dims.push_back({d, false});
    return dims;
  }
  std::vector<SymInt> dims;
  for (int64_t d : shape_of(ref(name))) dims.push_back(d == kBatch ? SymInt{1, true} : SymInt{d, false});
  return dims;
}

std::vector<int64_t> Importer::axes_of(const onnx::NodeProto& n, NodeAttrs& a, int input, int since_opset) {
  if (opset_ < since_opset) return a.get_ints("axes", {});
  if (n.input_size() <= input || n.input(input).empty()) return {};
  if (!is_folded(n.input(input))) fail("axes '" + n.input(input) + "' must be a constant");
  return folded(n.input(input)).static_ints("axes");
}

int Importer::fold(const onnx::NodeProto& n) {
  static const std::set<std::string> kOps = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast",
                                             "Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Equal", "And", "Or",
                                             "Not", "Neg", "Where", "ConstantOfShape", "Range", "Reshape", "Expand",
                                             "Identity", "Sqrt", "Pow", "Reciprocal"};
  const std::string& op = n.op_type();
  if (!kOps.count(op) || n.output_size() != 1 || n.input_size() == 0) return 0;
  if (op == "Shape") {
    if (!refs_.count(n.input(0)) && !views_.count(n.input(0)) && !inits_.count(n.input(0)) && !is_folded(n.input(0))) return 0;
  } else {
    for (const auto& in : n.input()) {
      if (!in.empty() && !is_folded(in)) return 0;
    }
  }
  // A batch-sized target for a constant: the data op (a class token expanded to [N, 1, E]).
  if ((op == "Reshape" || op == "Expand") && n.input_size() == 2 && folded(n.input(1)).has_batch()) return 0;
  NodeAttrs a(n, where_);
  auto in = [&](int i) {
    if (i >= n.input_size() || n.input(i).empty()) fail("input " + std::to_string(i) + " is missing");
    return folded(n.input(i));
  };
  auto ints_in = [&](int i, const char* what) { return in(i).static_ints(what); };
  Folded out;
  try {
    if (op == "Shape") {
      const std::vector<SymInt> dims = sym_shape(n.input(0));
      const int64_t r = static_cast<int64_t>(dims.size());
      int64_t start = a.get_int("start", 0), end = a.get_int("end", r);
      start = std::clamp<int64_t>(start < 0 ? start + r : start, 0, r);
      end = std::clamp<int64_t>(end < 0 ? end + r : end, 0, r);
      out.ints.assign(dims.begin() + start, dims.begin() + std::max(start, end));
      out.shape = {static_cast<int64_t>(out.ints.size())};
    } else if (op == "Gather") {
      want_inputs(n, 2, 2);
      out = folded_gather(in(0), in(1), a.get_int("axis", 0));
    } else if (op == "Unsqueeze" || op == "Squeeze") {
      out = in(0);
      std::vector<int64_t> axes = axes_of(n, a, 1, 13);
      if (op == "Unsqueeze") {
        const int64_t r = static_cast<int64_t>(out.shape.size() + axes.size());
        std::set<int64_t> at;
        for (int64_t x : axes) {
          if (x < -r || x >= r || !at.insert(x < 0 ? x + r : x).second) fail("Unsqueeze axes " + ints_str(axes) + " for rank " + std::to_string(r));
        }
        for (int64_t x : at) out.shape.insert(out.shape.begin() + x, 1);
      } else {
        const int64_t r = static_cast<int64_t>(out.shape.size());
        std::set<int64_t> at;
        for (int64_t x : axes) at.insert(axis(x, static_cast<int>(r)));
        Shape s;
        for (int64_t i = 0; i < r; ++i) {
          bool drop = axes.empty() ? out.shape[i] == 1 : at.count(i) != 0;
          if (drop && out.shape[i] != 1) fail("Squeeze of dimension " + std::to_string(i) + " of " + shape_str(out.shape));
          if (!drop) s.push_back(out.shape[i]);
        }
        out.shape = s;
      }
    } else if (op == "Concat") {
      std::vector<Folded> parts;
      for (int i = 0; i < n.input_size(); ++i) parts.push_back(in(i));
      out = folded_concat(parts, a.get_int("axis", 0));
    } else if (op == "Slice") {
      want_inputs(n, 3, 5);
      std::vector<int64_t> starts = ints_in(1, "starts"), ends = ints_in(2, "ends"), axes, steps;
      if (n.input_size() > 3 && !n.input(3).empty()) axes = ints_in(3, "axes");
      else for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
      if (n.input_size() > 4 && !n.input(4).empty()) steps = ints_in(4, "steps");
      else steps.assign(starts.size(), 1);
      if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) fail("Slice starts/ends/axes/steps differ in length");
      out = folded_slice(in(0), starts, ends, axes, steps);
    } else if (op == "Cast") {
      want_inputs(n, 1, 1);
      const int64_t to = a.get_int("to", 0);
      out = in(0);
      if (to == onnx::TensorProto::FLOAT || to == onnx::TensorProto::DOUBLE) {
        if (!out.real) {
          for (int64_t v : out.static_ints("Cast to float")) out.reals.push_back(static_cast<double>(v));
          out.ints.clear();
          out.real = true;
        }
      } else if (to == onnx::TensorProto::INT64 || to == onnx::TensorProto::INT32 || to == onnx::TensorProto::BOOL) {
        if (out.real) {
          for (double v : out.reals) {
            if (!std::isfinite(v) || std::fabs(v) > 9.2e18) fail("Cast of " + std::to_string(v) + " to an integer");
            out.ints.push_back({to == onnx::TensorProto::BOOL ? v != 0 : static_cast<int64_t>(v), false});
          }
          out.reals.clear();
          out.real = false;
        } else if (to == onnx::TensorProto::BOOL) {
          for (SymInt& v : out.ints) v = sym_binary("Equal", v, {0, false}).coef ? SymInt{0, false} : SymInt{1, false};
        }
      } else {
        fail("Cast to element type " + std::to_string(to) + " of a value computed at import time");
      }
    } else if (op == "Where") {
      want_inputs(n, 3, 3);
      Folded c = in(0), x = in(1), y = in(2);
      if (c.real || x.real != y.real) fail("Where of mismatched types");
      out.shape = folded_broadcast({&c, &x, &y});
      out.real = x.real;
      auto ci = broadcast_index(out.shape, c.shape), xi = broadcast_index(out.shape, x.shape), yi = broadcast_index(out.shape, y.shape);
      for (size_t i = 0; i < ci.size(); ++i) {
        const SymInt cond = c.ints[ci[i]];
        if (cond.batch) fail("Where's condition depends on the batch size");
        if (out.real) out.reals.push_back(cond.coef ? x.reals[xi[i]] : y.reals[yi[i]]);
        else out.ints.push_back(cond.coef ? x.ints[xi[i]] : y.ints[yi[i]]);
      }
    } else if (op == "ConstantOfShape") {
      want_inputs(n, 1, 1);
      std::vector<int64_t> s = ints_in(0, "ConstantOfShape shape");
      out.shape = Shape(s.begin(), s.end());
      int64_t count = 1;
      for (int64_t d : s) {
        if (d < 0 || (d != 0 && count > kMaxFoldedElements / d)) fail("ConstantOfShape " + ints_str(s) + " (Kiln computes up to " + std::to_string(kMaxFoldedElements) + " elements at import time)");
        count *= d;
      }
      Folded v = real_scalar_like(0.0);
      for (const auto& attr : n.attribute()) {
        if (attr.name() != "value") continue;
        if (attr.type() != onnx::AttributeProto::TENSOR) fail("attribute 'value' is not a TENSOR");
        owned_constants_.push_back(attr.t());
        const std::string tmp = fresh(n.output(0) + "/value");
        owned_constants_.back().set_name(tmp);
        inits_[tmp] = &owned_constants_.back();
        v = folded(tmp);
        inits_.erase(tmp);
        if (v.numel() != 1) fail("ConstantOfShape value must hold one element");
        a.mark_used("value");
      }
      out.real = v.real;
      if (v.real) out.reals.assign(static_cast<size_t>(count), v.reals[0]);
      else out.ints.assign(static_cast<size_t>(count), v.ints[0]);
    } else if (op == "Range") {
      want_inputs(n, 3, 3);
      Folded s = in(0), l = in(1), d = in(2);
      if (s.numel() != 1 || l.numel() != 1 || d.numel() != 1) fail("Range takes scalars");
      out.real = s.real;
      if (s.real) {
        double start = s.reals[0], limit = l.reals[0], delta = d.reals[0];
        double count = std::ceil((limit - start) / delta);
        if (!(delta != 0) || !std::isfinite(count) || count > kMaxFoldedElements) fail("Range(" + std::to_string(start) + ", " + std::to_string(limit) + ", " + std::to_string(delta) + ")");
        for (int64_t i = 0; i < static_cast<int64_t>(std::max(count, 0.0)); ++i) out.reals.push_back(start + static_cast<double>(i) * delta);
      } else {
        int64_t start = s.static_ints("Range start")[0], limit = l.static_ints("Range limit")[0], delta = d.static_ints("Range delta")[0];
        if (delta == 0) fail("Range delta 0");
        double count = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / static_cast<double>(delta));
        if (count > kMaxFoldedElements) fail("Range of more than " + std::to_string(kMaxFoldedElements) + " elements");
        for (int64_t i = 0; i < static_cast<int64_t>(std::max(count, 0.0)); ++i) out.ints.push_back({start + i * delta, false});
      }
      out.shape = {out.numel()};
    } else if (op == "Reshape" || op == "Expand") {
      want_inputs(n, 2, 2);
      out = in(0);
      std::vector<int64_t> target = ints_in(1, op == "Reshape" ? "shape" : "Expand shape");
      if (op == "Reshape") {
        if (a.get_int("allowzero", 0) != 0) fail("allowzero=1 is not supported");
        int infer = -1;
        int64_t known = 1;
        for (size_t i = 0; i < target.size(); ++i) {
          if (target[i] == 0 && i < out.shape.size()) target[i] = out.shape[i];
          if (target[i] == -1 && infer < 0) infer = static_cast<int>(i);
          else if (target[i] < 0) fail("reshape target " + ints_str(target));
          else known *= std::max<int64_t>(target[i], 1);
        }
        if (infer >= 0) target[infer] = known ? out.numel() / known : 0;
        int64_t total = 1;
        for (int64_t d : target) total *= d;
        if (total != out.numel()) fail("cannot reshape " + shape_str(out.shape) + " to " + ints_str(target));
        out.shape = Shape(target.begin(), target.end());
      } else {
        Folded shape_only;
        shape_only.shape = Shape(target.begin(), target.end());
        for (int64_t d : target) {
          if (d < 0) fail("Expand shape " + ints_str(target));
        }
        Folded src = out;
        out.shape = folded_broadcast({&src, &shape_only});
        int64_t count = 1;
        for (int64_t d : out.shape) count *= d;
        if (count > kMaxFoldedElements) fail("Expand to " + shape_str(out.shape));
        out.ints.clear();
        out.reals.clear();
        for (int64_t i : broadcast_index(out.shape, src.shape)) {
          if (src.real) out.reals.push_back(src.reals[i]);
          else out.ints.push_back(src.ints[i]);
        }
      }
    } else if (op == "Identity") {
      want_inputs(n, 1, 1);
      out = in(0);
    } else if (op == "Not" || op == "Neg" || op == "Sqrt" || op == "Reciprocal") {
      want_inputs(n, 1, 1);
      out = in(0);
      if (out.real) {
        for (double& v : out.reals) v = op == "Neg" ? -v : op == "Sqrt" ? std::sqrt(v) : op == "Reciprocal" ? 1.0 / v : !v;
      } else {
        if (op == "Sqrt" || op == "Reciprocal") fail(op + " of integers");
        for (SymInt& v : out.ints) v = op == "Neg" ? sym_binary("Sub", {0, false}, v) : SymInt{v.is(0), false};
      }
    } else {  // element-wise binary
      want_inputs(n, 2, 2);
      if (op == "Mod" && a.get_int("fmod", 0) == 0 && in(0).real) fail("Mod of floats needs fmod=1");
      Folded x = in(0), y = in(1);
      if (x.real != y.real) fail(op + " of an integer and a floating-point value");
      out.shape = folded_broadcast({&x, &y});
      int64_t count = 1;
      for (int64_t d : out.shape) count *= d;
      if (count > kMaxFoldedElements) fail(op + " result " + shape_str(out.shape));
      auto xi = broadcast_index(out.shape, x.shape), yi = broadcast_index(out.shape, y.shape);
      const bool compare = op == "Equal" || op == "And" || op == "Or";
      out.real = x.real && !compare;
      for (size_t i = 0; i < xi.size(); ++i) {
        if (!x.real) {
          if (op == "Pow") fail("Pow of integers");
          out.ints.push_back(sym_binary(op, x.ints[xi[i]], y.ints[yi[i]]));
          continue;
        }
        const double p = x.reals[xi[i]], q = y.reals[yi[i]];
        if (compare) {
          out.ints.push_back({op == "Equal" ? p == q : op == "And" ? (p != 0 && q != 0) : (p != 0 || q != 0), false});
          continue;
        }
        double r = op == "Add" ? p + q : op == "Sub" ? p - q : op == "Mul" ? p * q : op == "Div" ? p / q
                 : op == "Pow" ? std::pow(p, q) : op == "Max" ? std::max(p, q) : op == "Min" ? std::min(p, q)
                 : std::fmod(p, q);
        out.reals.push_back(r);
      }
    }
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    if (msg.rfind(where_, 0) == 0) throw;
    fail(msg);
  }
  a.done();
  if (out.real && out.numel() > kMaxFoldedReals && op != "ConstantOfShape" && op != "Range") {
    // Large float constants stay what they are in the file; only shape-sized ones are folded.
    fail("folding " + op + " gave " + std::to_string(out.numel()) + " floats");
  }
  define_folded(n.output(0), std::move(out));
  return 1;
}

}  // namespace kiln::runtime_export::onnx_io
