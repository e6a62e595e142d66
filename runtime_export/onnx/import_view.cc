// Views: the Reshape / Transpose / Squeeze / Unsqueeze chains that transformer exports write
// around attention (torch's nn.MultiheadAttention reshapes [L, N, E] to [L, N*H, D] and
// [L*N, E]) become at most one Kiln reshape each, with the batch kept in Kiln's dimension 0.
//
// An ONNX value is held as a Kiln value K seen through a permutation (U = permute(K, perm)),
// whose consecutive dimensions are merged in groups: ONNX dimension j is the product of U's
// dimensions in group j. A merge never moves data, so a merge that folds the batch into
// another dimension (N*H) can be carried until a later Reshape splits it again.
#include <numeric>

#include "runtime_export/onnx/importer.h"

namespace kiln::runtime_export::onnx_io {

namespace {

SymInt sym_dim(int64_t d) { return d == kBatch ? SymInt{1, true} : SymInt{d, false}; }

SymInt sym_product(const std::vector<SymInt>& dims, const std::string& where) {
  SymInt p{1, false};
  for (const SymInt& d : dims) p = sym_binary("Mul", p, d);
  (void)where;
  return p;
}

}  // namespace

Importer::View Importer::view_of(const std::string& name) {
  if (auto it = views_.find(name); it != views_.end()) return it->second;
  Ref r = ref(name);
  if (r.value < 0) r = Ref{materialize(r), "", identity_perm(rank_of(r))};
  return View{r.value, r.perm, std::vector<int>(r.perm.size(), 1)};
}

std::vector<SymInt> Importer::view_dims(const View& v) {
  const Shape u = permuted(g_.values[v.value].shape, v.perm);
  std::vector<SymInt> dims;
  size_t at = 0;
  for (int size : v.groups) {
    std::vector<SymInt> part;
    for (int k = 0; k < size; ++k) part.push_back(sym_dim(u[at++]));
    dims.push_back(sym_product(part, where_));
  }
  return dims;
}

void Importer::define_view(const std::string& name, const View& v) {
  if (std::all_of(v.groups.begin(), v.groups.end(), [](int s) { return s == 1; })) return define(name, v.value, v.perm);
  if (name.empty() || refs_.count(name) || inits_.count(name) || views_.count(name) || folded_values_.count(name)) {
    fail("value '" + name + "' is defined twice");
  }
  views_[name] = v;
}

// A Kiln reshape node; the batch (dimension 0 of both) is copied, never spelled out.
int Importer::kiln_reshape(int value, const Shape& shape, const std::string& name) {
  const graph::Value& in = g_.values[value];
  if (in.shape == shape) return value;
  std::vector<int64_t> target(shape.begin(), shape.end());
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == kBatch) {
      if (i != 0 || in.shape.empty() || in.shape[0] != kBatch) fail("reshape of " + shape_str(in.shape) + " to " + shape_str(shape) + " moves the batch");
      target[i] = 0;
    }
  }
  const DType dtype = in.dtype;
  return add_node(ops::Attrs("reshape").set("shape", target), {value}, name, shape, dtype);
}

// Permutes K so that U's dimensions come in U's order, the batch first: afterwards every group
// but one holding the batch covers consecutive Kiln dimensions in order.
Importer::View Importer::in_u_order(const View& v, const std::string& name) {
  const int r = static_cast<int>(v.perm.size());
  const Shape& k = g_.values[v.value].shape;
  Perm order;  // U dimensions, batch first
  for (int i = 0; i < r; ++i) {
    if (k[v.perm[i]] == kBatch) order.insert(order.begin(), i);
    else order.push_back(i);
  }
  Perm q(r), perm(r);
  for (int j = 0; j < r; ++j) {
    q[j] = v.perm[order[j]];
    perm[order[j]] = j;
  }
  if (is_identity(q)) return v;
  int out = add_node(ops::Attrs("permute").set("perm", std::vector<int64_t>(q.begin(), q.end())), {v.value}, name,
                     permuted(k, q), g_.values[v.value].dtype);
  return View{out, perm, v.groups};
}

// Merges each group's dimensions of K into one, so that the view is a plain permuted value.
// `only_last`: the last group alone, which must then be K's last dimension (what row-wise ops need).
Importer::View Importer::merged(View v, bool only_last, const std::string& name) {
  if (v.groups.empty()) fail("a scalar where Kiln needs a tensor");
  auto consecutive = [&](const View& w) {
    size_t at = 0;
    const int r = static_cast<int>(w.perm.size());
    for (size_t g = 0; g < w.groups.size(); ++g) {
      const bool wanted = !only_last || g + 1 == w.groups.size();
      for (int k = 1; wanted && k < w.groups[g]; ++k) {
        if (w.perm[at + k] != w.perm[at + k - 1] + 1) return false;
      }
      if (wanted && only_last && w.perm[at + w.groups[g] - 1] != r - 1) return false;
      at += w.groups[g];
    }
    return true;
  };
  if (!consecutive(v)) v = in_u_order(v, name + "_perm");
  if (!consecutive(v)) fail("the value's dimensions cannot be laid out for this op");
  const Shape k = g_.values[v.value].shape;
  const int r = static_cast<int>(k.size());
  // Kiln dimension -> (its group's first Kiln dimension, whether it is merged away).
  std::vector<int> lead(r);
  std::iota(lead.begin(), lead.end(), 0);
  size_t at = 0;
  for (size_t g = 0; g < v.groups.size(); ++g) {
    const bool wanted = !only_last || g + 1 == v.groups.size();
    for (int j = 1; wanted && j < v.groups[g]; ++j) lead[v.perm[at + j]] = v.perm[at];
    at += v.groups[g];
  }
  Shape shape;
  std::vector<int> new_index(r);
  for (int d = 0; d < r; ++d) {
    if (lead[d] != d) {
      if (shape.back() == kBatch || k[d] == kBatch) fail("a view of " + shape_str(k) + " folds the batch dimension into another one");
      shape.back() *= k[d];  // bounded: the product is a dimension of an ONNX value already checked
      new_index[d] = new_index[lead[d]];
      continue;
    }
    new_index[d] = static_cast<int>(shape.size());
    shape.push_back(k[d]);
  }
  View out{kiln_reshape(v.value, shape, name), {}, {}};
  at = 0;
  for (size_t g = 0; g < v.groups.size(); ++g) {
    const bool wanted = !only_last || g + 1 == v.groups.size();
    if (wanted) {
      out.perm.push_back(new_index[v.perm[at]]);
      out.groups.push_back(1);
    } else {
      for (int j = 0; j < v.groups[g]; ++j) out.perm.push_back(new_index[v.perm[at + j]]);
      out.groups.push_back(v.groups[g]);
    }
    at += v.groups[g];
  }
  return out;
}

Ref Importer::flat(const View& v, const std::string& name) {
  View m = merged(v, false, nhwc_name(name) + "_flat");
  return Ref{m.value, "", m.perm};
}

Importer::View Importer::transpose_view(const View& v, const Perm& p) {
  check_perm(p, static_cast<int>(v.groups.size()), where_ + ": perm");
  std::vector<int> first(v.groups.size());
  for (size_t g = 1; g < v.groups.size(); ++g) first[g] = first[g - 1] + v.groups[g - 1];
  View out{v.value, {}, {}};
  for (int g : p) {
    for (int j = 0; j < v.groups[g]; ++j) out.perm.push_back(v.perm[first[g] + j]);
    out.groups.push_back(v.groups[g]);
  }
  return out;
}

// The view of v reshaped to `target` (resolved: no 0 or -1). Both are factorisations of the
// same row-major sequence; their common refinement splits some of K's dimensions (one Kiln
// reshape) and regroups the rest (no node). Where no refinement exists (a [2, 3] read as
// [3, 2]), the value is laid out in ONNX order and reshaped there.
Importer::View Importer::reshape_view(const View& v, const std::vector<SymInt>& target, const std::string& name) {
  if (!(sym_product(view_dims(v), where_) == sym_product(target, where_))) {
    fail("cannot reshape " + sym_str(view_dims(v)) + " to " + sym_str(target));
  }
  // K's dimensions that follow each other in both K and U act as one (an earlier split of a
  // dimension is undone where the new target cuts it elsewhere): k and perm below are those
  // of K with such runs merged, a coarser reshape of K.
  Shape k;
  Perm perm;
  {
    const Shape& full = g_.values[v.value].shape;
    const Perm inv_full = inverse(v.perm);
    std::vector<int> run_of(full.size());
    for (size_t d = 0; d < full.size(); ++d) {
      const bool joins = d > 0 && inv_full[d] == inv_full[d - 1] + 1 && full[d] != kBatch && k.back() != kBatch;
      if (joins) k.back() *= full[d];  // bounded: a product of the value's own dimensions
      else k.push_back(full[d]);
      run_of[d] = static_cast<int>(k.size()) - 1;
    }
    for (size_t i = 0; i < v.perm.size(); ++i) {
      const int d = v.perm[i];
      if (d == 0 || run_of[d] != run_of[d - 1]) perm.push_back(run_of[d]);
    }
  }
  const Shape u = permuted(k, perm);
  struct Piece {
    SymInt size;
    int u, t;
  };
  std::vector<Piece> pieces;
  std::vector<int> us, ts;  // dimensions other than 1
  for (int i = 0; i < static_cast<int>(u.size()); ++i) {
    if (u[i] != 1) us.push_back(i);
  }
  for (int j = 0; j < static_cast<int>(target.size()); ++j) {
    if (!target[j].is(1)) ts.push_back(j);
  }
  bool aligned = true;
  size_t i = 0, j = 0;
  SymInt x = us.empty() ? SymInt{1, false} : sym_dim(u[us[0]]), y = ts.empty() ? SymInt{1, false} : target[ts[0]];
  while (aligned && i < us.size()) {
    if (j >= ts.size()) {
      aligned = false;
      break;
    }
    if (x.batch) {
      if (!y.batch) {
        aligned = false;
        break;
      }
      pieces.push_back({{1, true}, us[i], ts[j]});
      y.batch = false;
      x = {1, false};
    } else if (y.coef % x.coef == 0) {
      pieces.push_back({x, us[i], ts[j]});
      y.coef /= x.coef;
      x = {1, false};
    } else if (!y.batch && x.coef % y.coef == 0) {
      pieces.push_back({y, us[i], ts[j]});
      x.coef /= y.coef;
      y = {1, false};
    } else {
      aligned = false;
      break;
    }
    if (x.is(1) && ++i < us.size()) x = sym_dim(u[us[i]]);
    if (y.is(1) && ++j < ts.size()) y = target[ts[j]];
  }
  if (!aligned || j < ts.size()) {
    Ref r = flat(v, name);
    int plain = materialize(r);
    Shape s;
    for (const SymInt& d : target) {
      if (d.batch && !(d.coef == 1 && s.empty())) fail("reshape to " + sym_str(target) + " folds the batch dimension into another one");
      s.push_back(d.batch ? kBatch : d.coef);
    }
    return View{kiln_reshape(plain, s, nhwc_name(name)), identity_perm(static_cast<int>(s.size())),
                std::vector<int>(s.size(), 1)};
  }
  // K's new shape: each dimension split into its pieces, 1s dropped, one 1 per size-1 target dimension.
  const Perm inv = inverse(perm);
  Shape shape;
  std::vector<int> piece_index(pieces.size());
  for (int d = 0; d < static_cast<int>(k.size()); ++d) {
    for (size_t p = 0; p < pieces.size(); ++p) {
      if (pieces[p].u != inv[d]) continue;
      piece_index[p] = static_cast<int>(shape.size());
      shape.push_back(pieces[p].size.batch ? kBatch : pieces[p].size.coef);
    }
  }
  View out;
  for (int t = 0; t < static_cast<int>(target.size()); ++t) {
    int size = 0;
    if (target[t].is(1)) {
      out.perm.push_back(static_cast<int>(shape.size()));
      shape.push_back(1);
      size = 1;
    }
    for (size_t p = 0; p < pieces.size(); ++p) {
      if (pieces[p].t != t) continue;
      out.perm.push_back(piece_index[p]);
      ++size;
    }
    out.groups.push_back(size);
  }
  if (shape.empty() && !k.empty() && k[0] == kBatch) fail("reshape of a batched value to a scalar");
  // Pieces already in the target's order: K takes the target's own layout, size-1 dimensions
  // in place, so that no permute of size-1 dimensions is ever needed for it.
  bool in_order = true;
  for (size_t i = 1, last = 0, seen = 0; i <= out.perm.size(); ++i) {
    const int p = out.perm[i - 1];
    if (shape[p] == 1) continue;
    if (seen++ && static_cast<size_t>(p) < last) in_order = false;
    last = p;
  }
  if (in_order) {
    Shape laid;
    for (int p : out.perm) laid.push_back(shape[p]);
    if (!laid.empty() && !shape.empty() && shape[0] == kBatch && laid[0] != kBatch) in_order = false;
    if (in_order) {
      shape = laid;
      out.perm = identity_perm(static_cast<int>(laid.size()));
    }
  }
  out.value = kiln_reshape(v.value, shape, nhwc_name(name));
  return out;
}

// Reshape's target with 0 (copy, unless allowzero) and -1 (the rest) resolved.
std::vector<SymInt> Importer::reshape_target(const std::vector<SymInt>& in, std::vector<SymInt> target, bool allowzero) {
  int infer = -1;
  SymInt known{1, false};
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i].is(0) && !allowzero) {
      if (i >= in.size()) fail("reshape copies dimension " + std::to_string(i) + " of " + sym_str(in));
      target[i] = in[i];
    }
    if (target[i].is(-1)) {
      if (infer >= 0) fail("reshape target " + sym_str(target) + " has two -1");
      infer = static_cast<int>(i);
      continue;
    }
    if (target[i].coef < 0) fail("reshape target " + sym_str(target) + " has a negative dimension");
    known = sym_binary("Mul", known, target[i]);
  }
  if (infer >= 0) {
    const SymInt total = sym_product(in, where_);
    if (known.is(0) || (known.batch && !total.batch)) fail("cannot reshape " + sym_str(in) + " to " + sym_str(target));
    target[infer] = sym_binary("Div", total, known);
  }
  return target;
}

void Importer::reshape_node(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 2, 2);
  const bool allowzero = a.get_int("allowzero", 0) != 0;
  a.done();
  if (!is_folded(n.input(1))) fail("shape '" + n.input(1) + "' is neither a constant nor computable from shapes");
  Folded t = folded(n.input(1));
  if (t.real || t.shape.size() != 1 || t.numel() > kMaxRank) fail("shape '" + n.input(1) + "' must be an integer vector of at most " + std::to_string(kMaxRank) + " values");
  View v = view_of(n.input(0));
  const std::vector<SymInt> target = reshape_target(view_dims(v), t.ints, allowzero);
  define_view(n.output(0), reshape_view(v, target, n.output(0)));
}

void Importer::squeeze(const onnx::NodeProto& n, NodeAttrs& a) {
  if (n.input_size() < 1 || n.input_size() > 2 || n.output_size() != 1) fail("takes 1 or 2 inputs and one output");
  const bool unsqueeze = n.op_type() == "Unsqueeze";
  std::vector<int64_t> axes = axes_of(n, a, 1, 13);
  a.done();
  View v = view_of(n.input(0));
  std::vector<SymInt> dims = view_dims(v);
  const int r = static_cast<int>(dims.size() + (unsqueeze ? axes.size() : 0));
  std::set<int64_t> at;
  for (int64_t x : axes) {
    if (!at.insert(axis(x, r)).second) fail("axes " + ints_str(axes) + " repeat an axis");
  }
  std::vector<SymInt> target;
  if (unsqueeze) {
    if (axes.empty()) fail("Unsqueeze without axes");
    for (int i = 0, src = 0; i < r; ++i) target.push_back(at.count(i) ? SymInt{1, false} : dims[src++]);
  } else {
    for (int i = 0; i < r; ++i) {
      const bool drop = axes.empty() ? dims[i].is(1) : at.count(i) != 0;
      if (drop && !dims[i].is(1)) fail("Squeeze of dimension " + std::to_string(i) + " of " + sym_str(dims) + ", which is not 1");
      if (!drop) target.push_back(dims[i]);
    }
  }
  define_view(n.output(0), reshape_view(v, target, n.output(0)));
}

// Gather with constant indices on any axis but the batch: Kiln's gather on the Kiln axis
// behind it, the value's permutation kept.
void Importer::gather_view(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 2, 2);
  const Folded idx = folded(n.input(1));
  const std::vector<int64_t> ids = idx.static_ints("Gather indices");
  Ref x = flat(view_of(n.input(0)), n.output(0));
  const int r = rank_of(x);
  if (r == 0) fail("Gather of a scalar");
  const int64_t ax = axis(a.get_int("axis", 0), r);
  a.done();
  const int k = x.perm[ax];
  const Shape ks = g_.values[x.value].shape;
  if (ks[k] == kBatch) fail("Gather along the batch dimension");
  std::vector<int32_t> s32;
  for (int64_t id : ids) {
    if (id < -ks[k] || id >= ks[k]) fail("index " + std::to_string(id) + " is outside [-" + std::to_string(ks[k]) + ", " + std::to_string(ks[k]) + ")");
    s32.push_back(static_cast<int32_t>(id < 0 ? id + ks[k] : id));
  }
  Tensor t = Tensor::from_int32(s32, idx.shape);
  int iv = add_value(n.input(1), t.shape(), t.dtype());
  g_.constants.push_back({iv, false, t});
  const int extra = static_cast<int>(idx.shape.size()) - 1;
  Shape out(ks.begin(), ks.begin() + k);
  out.insert(out.end(), idx.shape.begin(), idx.shape.end());
  out.insert(out.end(), ks.begin() + k + 1, ks.end());
  Perm perm;
  auto moved = [&](int d) { return d < k ? d : d + extra; };
  for (int i = 0; i < r; ++i) {
    if (i == ax) {
      for (int j = 0; j <= extra; ++j) perm.push_back(k + j);
    } else {
      perm.push_back(moved(x.perm[i]));
    }
  }
  const DType dtype = g_.values[x.value].dtype;
  define(n.output(0), add_node(ops::Attrs("gather").set("axis", ops::AttrValue(int64_t{k})), {x.value, iv}, nhwc_name(n.output(0)), out, dtype), perm);
}

// x @ W with a constant 2-D W: Kiln's matmul on K itself once the contracted dimension is K's
// last, so a [L, N, E] view of an [N, L, E] value needs no transpose.
void Importer::matmul_rowwise(const onnx::NodeProto& n) {
  View v = merged(view_of(n.input(0)), true, n.output(0) + "_rows");
  Ref w = ref(n.input(1));
  const int wv = materialize(w);
  const graph::Value &x = g_.values[v.value], &wt = g_.values[wv];
  if (x.shape.back() != wt.shape[0] || x.dtype != wt.dtype || !is_floating(x.dtype)) {
    fail("MatMul of " + std::string(dtype_name(x.dtype)) + shape_str(x.shape) + " and " + dtype_name(wt.dtype) + shape_str(wt.shape));
  }
  Shape s = x.shape;
  s.back() = wt.shape[1];
  const DType dtype = x.dtype;
  v.value = add_node(ops::Attrs("matmul"), {v.value, wv}, nhwc_name(n.output(0)), s, dtype);
  define_view(n.output(0), v);
}

// Gemm over a view that merges the batch with another dimension ([L*N, E]): Kiln's linear on K.
void Importer::gemm_rowwise(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 2, 3);
  const float alpha = a.get_float("alpha", 1.f), beta = a.get_float("beta", 1.f);
  const bool trans_a = a.get_int("transA", 0) != 0, trans_b = a.get_int("transB", 0) != 0;
  a.done();
  if (trans_a) fail("transA=1 on a value that merges the batch with another dimension");
  View v = merged(view_of(n.input(0)), true, n.output(0) + "_rows");
  if (v.groups.size() != 2) fail("Gemm of a rank-" + std::to_string(v.groups.size()) + " value");
  Ref w = scaled_constant(ref(n.input(1)), alpha, "alpha");
  const int wv = materialize(w, trans_b ? Perm{1, 0} : Perm{});
  const Shape ks = g_.values[v.value].shape, ws = g_.values[wv].shape;
  if (ks.back() != ws[0] || g_.values[v.value].dtype != DType::f32) fail("Gemm of " + shape_str(ks) + " and " + shape_str(ws));
  std::vector<int> ins{v.value, wv};
  if (n.input_size() == 3 && !n.input(2).empty()) {
    Ref c = ref(n.input(2));
    if (shape_of(c) != Shape{ws[1]}) fail("Gemm C " + shape_str(shape_of(c)) + " is not [" + std::to_string(ws[1]) + "]");
    ins.push_back(materialize(scaled_constant(c, beta, "beta")));
  }
  Shape s = ks;
  s.back() = ws[1];
  v.value = add_node(ops::Attrs("linear").set("activation", "none"), ins, nhwc_name(n.output(0)), s, DType::f32);
  define_view(n.output(0), v);
}

// Expand to a shape holding the batch: x plus zeros of the target's shape, batch-sized zeros
// made from a graph input when x has no batch (a class token expanded to [N, 1, E]).
void Importer::expand(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 2, 2);
  a.done();
  if (!is_folded(n.input(1))) fail("shape '" + n.input(1) + "' is neither a constant nor computable from shapes");
  const Folded t = folded(n.input(1));
  if (t.real || t.shape.size() != 1 || t.numel() > kMaxRank) fail("Expand shape must be an integer vector of at most " + std::to_string(kMaxRank) + " values");
  Ref x = ref(n.input(0));
  int xv = materialize(x);
  const Shape xs = g_.values[xv].shape;
  const DType dtype = g_.values[xv].dtype;
  if (!is_floating(dtype)) fail("Expand of " + std::string(dtype_name(dtype)) + " (Kiln expands by adding zeros)");
  const size_t r = std::max(xs.size(), t.ints.size());
  Shape statics(r, 1);  // the target, batch left at 1
  bool want_batch = false;
  for (size_t i = 0; i < t.ints.size(); ++i) {
    const SymInt d = t.ints[i];
    if (d.batch && !(d.coef == 1 && i + r - t.ints.size() == 0)) fail("Expand to " + sym_str(t.ints) + " puts the batch outside dimension 0");
    if (!d.batch && d.coef < 0) fail("Expand to " + sym_str(t.ints));
    if (d.batch) want_batch = true;
    else statics[i + r - t.ints.size()] = d.coef;
  }
  Shape out = broadcast(xs, statics, where_);
  const bool has_batch = !xs.empty() && xs.size() == r && xs[0] == kBatch;
  if (out != xs) {
    int64_t count = 1;
    for (int64_t d : statics) {
      if (d != 0 && count > kMaxFoldedElements / d) {
        fail("Expand to " + sym_str(t.ints) + ": Kiln expands by adding a zeros constant of the target's shape, at most " +
             std::to_string(kMaxFoldedElements) + " elements");
      }
      count *= d;
    }
    Tensor zeros = Tensor::zeros(statics, dtype);
    int zv = add_value(n.output(0) + "_zeros", statics, dtype);
    g_.constants.push_back({zv, false, zeros});
    xv = add_node(ops::Attrs("add"), {xv, zv}, nhwc_name(n.output(0)) + "_expanded", out, dtype);
  }
  if (want_batch && !has_batch) {
    if (out.empty() || out[0] != 1) fail("Expand of " + shape_str(xs) + " to a batch from a dimension other than 1");
    int zeros = batch_zeros(static_cast<int>(out.size()), dtype);
    out[0] = kBatch;
    xv = add_node(ops::Attrs("add"), {zeros, xv}, nhwc_name(n.output(0)), out, dtype);
  }
  define(n.output(0), xv, identity_perm(static_cast<int>(out.size())));
}

// Zeros of shape [N, 1, ..., 1] for the batch the graph runs at. Kiln's graphs take their batch
// from an input: the argmax over a size-1 slice of the first batched input is 0 whatever the
// input holds (NaN included), which x * 0 would not give.
int Importer::batch_zeros(int rank, DType dtype) {
  int input = -1;
  for (int v : g_.inputs) {
    if (!g_.values[v].shape.empty() && g_.values[v].shape[0] == kBatch) {
      input = v;
      break;
    }
  }
  if (input < 0) fail("an Expand to the batch size, but no graph input has a batch dimension");
  const graph::Value in = g_.values[input];
  int v = input;
  if (in.shape.size() != 2) {
    int64_t rest = 1;
    for (size_t i = 1; i < in.shape.size(); ++i) rest *= in.shape[i];
    v = add_node(ops::Attrs("reshape").set("shape", std::vector<int64_t>{0, rest}), {v}, in.name + "_rows", {kBatch, rest}, in.dtype);
  }
  if (g_.values[v].shape[1] == 0) fail("an Expand to the batch size from an empty input");
  ops::Attrs first("slice");
  first.set("axis", ops::AttrValue(int64_t{1})).set("start", ops::AttrValue(int64_t{0})).set("end", ops::AttrValue(int64_t{1}));
  first.set("step", ops::AttrValue(int64_t{1}));
  v = add_node(first, {v}, in.name + "_first", {kBatch, 1}, in.dtype);
  if (!is_floating(in.dtype)) v = add_node(ops::Attrs("cast").set("dtype", "f32"), {v}, in.name + "_float", {kBatch, 1}, DType::f32);
  v = add_node(ops::Attrs("argmax").set("axis", ops::AttrValue(int64_t{1})), {v}, in.name + "_zero_index", {kBatch}, DType::s32);
  v = add_node(ops::Attrs("cast").set("dtype", dtype_name(dtype)), {v}, in.name + "_zeros", {kBatch}, dtype);
  Shape s(rank, 1);
  s[0] = kBatch;
  std::vector<int64_t> target(rank, 1);
  target[0] = 0;
  return add_node(ops::Attrs("reshape").set("shape", target), {v}, in.name + "_batch_zeros", s, dtype);
}

// Split into Kiln slices along the axis behind the ONNX one (sizes: an input from opset 13,
// an attribute before, equal parts or num_outputs from opset 18 when absent).
void Importer::split(const onnx::NodeProto& n, NodeAttrs& a) {
  if (n.input_size() < 1 || n.input_size() > 2 || n.output_size() < 1) fail("takes 1 or 2 inputs and at least one output");
  Ref x = flat(view_of(n.input(0)), n.output(0));
  const int r = rank_of(x);
  const int64_t ax = axis(a.get_int("axis", 0), r);
  std::vector<int64_t> sizes;
  if (opset_ < 13) {
    sizes = a.get_ints("split", {});
  } else if (n.input_size() == 2 && !n.input(1).empty()) {
    if (!is_folded(n.input(1))) fail("split sizes '" + n.input(1) + "' must be a constant");
    sizes = folded(n.input(1)).static_ints("split sizes");
  }
  if (opset_ >= 18) {
    int64_t parts = a.get_int("num_outputs", 0);
    if (parts && parts != n.output_size()) fail("num_outputs " + std::to_string(parts) + " but " + std::to_string(n.output_size()) + " outputs");
  }
  a.done();
  const int k = x.perm[ax];
  const Shape ks = g_.values[x.value].shape;
  const int64_t dim = ks[k];
  if (dim == kBatch) fail("Split along the batch dimension");
  const int64_t parts = n.output_size();
  if (sizes.empty()) {
    const int64_t each = (dim + parts - 1) / parts;  // ONNX: equal parts, the last one smaller
    for (int64_t i = 0; i < parts; ++i) sizes.push_back(std::max<int64_t>(0, std::min(each, dim - i * each)));
  }
  if (static_cast<int64_t>(sizes.size()) != parts) fail("split sizes " + ints_str(sizes) + " for " + std::to_string(parts) + " outputs");
  int64_t start = 0;
  for (int64_t i = 0; i < parts; ++i) {
    if (sizes[i] < 0 || sizes[i] > dim - start) fail("split sizes " + ints_str(sizes) + " do not add up to " + std::to_string(dim));
    ops::Attrs call("slice");
    call.set("axis", ops::AttrValue(int64_t{k})).set("start", ops::AttrValue(start)).set("end", ops::AttrValue(start + sizes[i]));
    call.set("step", ops::AttrValue(int64_t{1}));
    Shape s = ks;
    s[k] = sizes[i];
    const DType dtype = g_.values[x.value].dtype;
    if (!n.output(i).empty()) define(n.output(i), add_node(call, {x.value}, nhwc_name(n.output(i)), s, dtype), x.perm);
    start += sizes[i];
  }
  if (start != dim) fail("split sizes " + ints_str(sizes) + " do not add up to " + std::to_string(dim));
}

// The ops above, and the folded shape subgraphs, ahead of the single-op dispatch.
int Importer::shape_and_view_node(const onnx::NodeProto& n) {
  if (absorbed_.count(order_[index_])) return 1;
  if (int k = fold(n)) return k;
  if (int k = layer_norm_decomposed(n)) return k;
  const std::string& op = n.op_type();
  // Inputs past the node's own read as omitted (""), so that a malformed node reaches the
  // handler's own arity check instead of protobuf's.
  static const std::string kOmitted;
  auto input = [&](int i) -> const std::string& { return i < n.input_size() ? n.input(i) : kOmitted; };
  const bool computed = refs_.count(input(0)) || views_.count(input(0));
  NodeAttrs a(n, where_);
  if (op == "Identity" && n.input_size() == 1 && n.output_size() == 1 && inits_.count(input(0))) {
    // torch writes one initializer per distinct value and Identity nodes for the equal ones:
    // they stay constants, so that weights are still seen as weights.
    a.done();
    const std::string& out = n.output(0);
    if (out.empty() || refs_.count(out) || inits_.count(out) || views_.count(out) || folded_values_.count(out)) fail("redefines '" + out + "'");
    inits_[out] = inits_.at(input(0));
    return 1;
  }
  if (op == "Reshape" && (computed || inits_.count(input(0)))) return reshape_node(n, a), 1;
  if ((op == "Squeeze" || op == "Unsqueeze") && computed) return squeeze(n, a), 1;
  if (op == "Split" && computed) return split(n, a), 1;
  if (op == "Expand" && (computed || inits_.count(input(0))) && is_folded(input(1)) && folded(input(1)).has_batch()) return expand(n, a), 1;
  if (op == "Gather" && computed && n.input_size() == 2 && is_folded(input(1)) &&
      (views_.count(input(0)) || !is_identity(refs_.at(input(0)).perm))) {
    return gather_view(n, a), 1;
  }
  if (op == "Transpose" && views_.count(input(0))) {
    want_inputs(n, 1, 1);
    std::vector<int64_t> p = a.get_ints("perm", {});
    a.done();
    const View v = views_.at(input(0));
    if (p.empty()) {
      for (size_t g = v.groups.size(); g-- > 0;) p.push_back(static_cast<int64_t>(g));
    }
    for (int64_t q : p) {
      if (q < 0 || q >= kMaxRank) fail("perm " + ints_str(p));
    }
    define_view(n.output(0), transpose_view(v, Perm(p.begin(), p.end())));
    return 1;
  }
  if (op == "MatMul" && computed && n.input_size() == 2 && inits_.count(input(1)) && !refs_.count(input(1))) {
    want_inputs(n, 2, 2);
    a.done();
    if (rank_of(ref(input(1))) == 2) return matmul_rowwise(n), 1;
    return 0;
  }
  if (op == "Gemm" && views_.count(input(0))) return gemm_rowwise(n, a), 1;
  if (op == "Identity" && views_.count(input(0))) {
    want_inputs(n, 1, 1);
    a.done();
    define_view(n.output(0), views_.at(input(0)));
    return 1;
  }
  return 0;
}

}  // namespace kiln::runtime_export::onnx_io
