// Shape and dtype inference for every op kind: OpDef::infer, one case per kind of infer_of's
// switch (no default: a kind without a case does not compile, -Werror=switch). Each case
// checks what the eager op checks, in its order and with its message, on dtypes and shapes
// alone, and gives the output types the eager op would make. The kernels' own arithmetic is
// reused where it is shared (conv_geometry, plan_spatial, broadcast_shapes, normalize_axis);
// a leading kSymbolicBatch dimension propagates as the batch.
#include <limits>
#include <stdexcept>

#include "tensor/ops/conv_geometry.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/registry.h"

namespace kiln::ops {
namespace {

using Types = std::vector<ValueType>;

bool is_int8(DType d) { return d == DType::u8 || d == DType::s8; }
int rank(const ValueType& v) { return static_cast<int>(v.shape.size()); }
bool batched(const ValueType& v) { return !v.shape.empty() && v.shape[0] == kSymbolicBatch; }

// The number of elements outside the batch dimension (all of them for an unbatched value);
// throws when it overflows.
int64_t known_elements(const ValueType& v, const char* op) {
  Shape s = v.shape;
  if (batched(v)) s[0] = 1;
  checked_nbytes(s, 1, op);
  return numel(s);
}

void check_floating(const ValueType& v, const char* op) {
  if (!is_floating(v.dtype)) {
    throw std::invalid_argument(std::string(op) + ": expected a floating tensor (f32 or bf16), got " + describe(v));
  }
}
void check_same_dtype(const ValueType& a, const ValueType& b, const char* op) {
  if (a.dtype != b.dtype) throw std::invalid_argument(std::string(op) + ": dtypes differ: " + describe(a) + " vs " + describe(b));
}
void check_rank(const ValueType& v, int r, const char* op, const char* what) {
  if (rank(v) != r) {
    throw std::invalid_argument(std::string(op) + ": " + what + " must have rank " + std::to_string(r) + ", got " +
                                describe(v));
  }
}
// The batch dimension is a size no attribute can name: an op that would cut or grow it.
[[noreturn]] void batch_axis(const char* op, const ValueType& v, const std::string& what) {
  throw std::invalid_argument(std::string(op) + ": " + what + " of " + describe(v) +
                              " acts on the batch dimension N, whose size the graph does not fix");
}

Types one(ValueType v) { return Types{std::move(v)}; }

Types binary_type(const Types& in, const char* op) {
  check_same_dtype(in[0], in[1], op);
  if (!is_floating(in[0].dtype)) {
    throw std::invalid_argument(std::string(op) + ": expected f32 or bf16 inputs, got " + describe(in[0]) + " and " +
                                describe(in[1]));
  }
  // broadcast_shapes keeps the batch (-1) against 1 or itself and rejects it against any other size.
  return one({in[0].dtype, broadcast_shapes(in[0].shape, in[1].shape, op)});
}

Types matmul_type(const Types& in) {
  const ValueType &a = in[0], &b = in[1];
  bool int8 = is_int8(a.dtype) && b.dtype == DType::s8;
  if (!int8) {
    check_floating(a, "matmul");
    check_floating(b, "matmul");
    check_same_dtype(a, b, "matmul");
  }
  if (rank(a) < 1 || rank(b) < 1) {
    throw std::invalid_argument("matmul: inputs need rank >= 1, got " + describe(a) + " and " + describe(b));
  }
  if (a.shape.back() != b.shape[rank(b) >= 2 ? rank(b) - 2 : 0]) {
    throw std::invalid_argument("matmul: inner dimensions differ: " + describe(a) + " @ " + describe(b));
  }
  // numpy's vectors: a 1-D a is a row, a 1-D b a column; the result drops that dimension.
  Shape a2 = a.shape, b2 = b.shape;
  if (rank(a) == 1) a2.insert(a2.begin(), 1);
  if (rank(b) == 1) b2.push_back(1);
  int n = std::max(static_cast<int>(a2.size()), static_cast<int>(b2.size()));
  Shape sa(n - a2.size(), 1), sb(n - b2.size(), 1);
  sa.insert(sa.end(), a2.begin(), a2.end());
  sb.insert(sb.end(), b2.begin(), b2.end());
  Shape out;
  for (int i = 0; i < n - 2; ++i) {
    if (sa[i] != sb[i] && sa[i] != 1 && sb[i] != 1) {
      throw std::invalid_argument("matmul: batch dimensions of " + describe(a) + " and " + describe(b) +
                                  " cannot be broadcast");
    }
    out.push_back(sa[i] == 1 ? sb[i] : sa[i]);
  }
  if (rank(a) != 1) out.push_back(sa[n - 2]);
  if (rank(b) != 1) out.push_back(sb[n - 1]);
  return one({int8 ? DType::s32 : a.dtype, out});
}

// scaled_dot_product_attention's checks (tensor/ops/attention.cc), in its order.
Types attention_type(const Types& in, const AttentionAttrs& a) {
  const char* op = "scaled_dot_product_attention";
  const ValueType &q = in[0], &k = in[1], &v = in[2];
  check_floating(q, op);
  check_same_dtype(q, k, op);
  check_same_dtype(q, v, op);
  std::string shapes = describe(q) + ", " + describe(k) + ", " + describe(v);
  if (rank(q) < 2 || rank(k) != rank(q) || rank(v) != rank(q)) {
    throw std::invalid_argument(std::string(op) + ": query, key and value need one rank >= 2, got " + shapes);
  }
  int n = rank(q);
  for (int i = 0; i < n - 2; ++i) {
    if (k.shape[i] != q.shape[i] || v.shape[i] != q.shape[i]) {
      throw std::invalid_argument(std::string(op) + ": leading dimensions of query, key and value differ: " + shapes);
    }
  }
  if (k.shape[n - 1] != q.shape[n - 1]) throw std::invalid_argument(std::string(op) + ": query and key depths differ: " + shapes);
  if (v.shape[n - 2] != k.shape[n - 2]) throw std::invalid_argument(std::string(op) + ": key and value lengths differ: " + shapes);
  if (in.size() > 3) {
    const ValueType& m = in[3];
    bool additive = a.mask_kind == AttentionMask::additive;
    if (!(is_floating(m.dtype) || (!additive && m.dtype == DType::u8))) {
      throw std::invalid_argument(std::string(op) + ": a " + attention_mask_name(a.mask_kind) + " mask must be " +
                                  (additive ? "f32 or bf16" : "f32, bf16 or u8") + ", got " + describe(m));
    }
    Shape s = q.shape;
    s.back() = k.shape[n - 2];
    bool fits = rank(m) <= n;
    for (int i = 0; fits && i < rank(m); ++i) {
      int64_t d = m.shape[rank(m) - 1 - i], want = s[n - 1 - i];
      // A batched mask against batched scores, or an unbatched 1.
      fits = d == 1 || d == want;
    }
    if (!fits) {
      throw std::invalid_argument(std::string(op) + ": mask " + describe(m) + " does not broadcast to the scores " +
                                  describe({q.dtype, s}) + " of " + shapes);
    }
  }
  Shape out = q.shape;
  out.back() = v.shape.back();
  return one({q.dtype, out});
}

ValueType linear_type(const ValueType& x, const ValueType& w, const ValueType* bias, const char* op) {
  check_floating(x, op);
  check_rank(w, 2, op, "weights");
  check_same_dtype(x, w, op);
  if (rank(x) < 1 || x.shape.back() != w.shape[0]) {
    throw std::invalid_argument(std::string(op) + ": input " + describe(x) + " does not match weights " + describe(w) +
                                " (expected last input dimension " + std::to_string(w.shape[0]) + ")");
  }
  if (bias) {
    check_floating(*bias, op);
    if (rank(*bias) != 1 || bias->shape[0] != w.shape[1]) {
      throw std::invalid_argument(std::string(op) + ": bias " + describe(*bias) + " does not match weights " + describe(w));
    }
  }
  if (rank(x) != 2 && w.shape[0] == 0) {
    // linear runs other ranks as a [-1, K] matrix, which reshape cannot make for K = 0.
    throw std::invalid_argument("reshape: cannot reshape " + describe(x) + " into [-1, 0]");
  }
  Shape out = x.shape;
  out.back() = w.shape[1];
  return {x.dtype, out};
}

ValueType conv_type(const ValueType& x, const ValueType& w, const ValueType* bias, const Conv2dAttrs& a,
                    const char* op) {
  check_floating(x, op);
  check_rank(x, 4, op, "input (NHWC)");
  check_rank(w, 4, op, "kernel (HWIO)");
  if (!(w.dtype == DType::f32 && x.dtype == DType::bf16)) check_same_dtype(x, w, op);
  std::string shapes = "input " + describe(x) + ", kernel " + describe(w);
  ConvGeometry g = conv_geometry(x.shape, w.shape, a, op, shapes);
  if (bias) {
    check_floating(*bias, op);
    if (rank(*bias) != 1 || bias->shape[0] != g.o) {
      throw std::invalid_argument(std::string(op) + ": bias " + describe(*bias) + " does not match " +
                                  std::to_string(g.o) + " output channels of kernel " + describe(w));
    }
  }
  return {x.dtype, g.dst_shape()};
}

// The residual of a fused epilogue, added to the output y.
void check_residual(const ValueType& y, const ValueType& residual, const char* op) {
  if (residual.shape != y.shape) {
    throw std::invalid_argument(std::string(op) + ": residual " + shape_str(residual.shape) +
                                " does not match the output " + shape_str(y.shape));
  }
  check_same_dtype(y, residual, "add");
}

const ValueType* optional(const Types& in, size_t i) { return in.size() > i ? &in[i] : nullptr; }

// qconv2d and qlinear: int8 input and residual, s8 weights with one scale per output channel,
// the float op in between, then the output dtype.
ValueType quantized_type(const Types& in, const QuantizedEpilogue& q, const char* op, int weight_rank,
                         const std::function<ValueType(const ValueType& x, const ValueType& w)>& float_op) {
  const ValueType &x = in[0], &w = in[1];
  if (!is_int8(x.dtype)) throw std::invalid_argument(std::string(op) + ": input must be u8 or s8, got " + describe(x));
  if (w.dtype != DType::s8) throw std::invalid_argument(std::string(op) + ": weights must be s8, got " + describe(w));
  check_rank(w, weight_rank, op, "weights");
  if (static_cast<int64_t>(q.w_scales.size()) != w.shape.back()) {
    throw std::invalid_argument(std::string(op) + ": " + std::to_string(q.w_scales.size()) + " weight scales for " +
                                std::to_string(w.shape.back()) + " output channels (" + describe(w) + ")");
  }
  const ValueType* residual = optional(in, 3);
  if (residual && !is_int8(residual->dtype)) {
    throw std::invalid_argument(std::string(op) + ": residual must be u8 or s8, got " + describe(*residual));
  }
  ValueType y = float_op({DType::f32, x.shape}, {DType::f32, w.shape});
  if (residual) check_residual(y, {DType::f32, residual->shape}, op);
  if (q.out_dtype != DType::f32 && !is_int8(q.out_dtype)) {
    throw std::invalid_argument(std::string(op) + ": out_dtype must be u8, s8 or f32, got " + dtype_name(q.out_dtype));
  }
  return {q.out_dtype, y.shape};
}

ValueType pool_type(const ValueType& x, const Pool2dAttrs& a, const char* op) {
  if (!is_int8(x.dtype)) check_floating(x, op);
  check_rank(x, 4, op, "input (NHWC)");
  std::string shapes = "input " + describe(x) + ", pool " + shape_str({a.pool_size[0], a.pool_size[1]});
  Pool2dPlan p = plan_pool2d(x.shape, a, op, shapes);
  return {x.dtype, {x.shape[0], p.h.out, p.w.out, x.shape[3]}};
}

Types conv_transpose_type(const Types& in, const ConvTranspose2dAttrs& a) {
  const char* op = "conv_transpose2d";
  const ValueType &x = in[0], &w = in[1];
  check_floating(x, op);
  check_rank(x, 4, op, "input (NHWC)");
  check_rank(w, 4, op, "kernel ([KH, KW, O, C])");
  check_same_dtype(x, w, op);
  Shape out = conv_transpose2d_output_shape(x.shape, w.shape, a, op, "input " + describe(x) + ", kernel " + describe(w));
  if (const ValueType* bias = in.size() > 2 ? &in[2] : nullptr) {
    check_same_dtype(x, *bias, op);
    if (rank(*bias) != 1 || bias->shape[0] != w.shape[2]) {
      throw std::invalid_argument(std::string(op) + ": bias " + describe(*bias) + " does not match " +
                                  std::to_string(w.shape[2]) + " output channels of kernel " + describe(w));
    }
  }
  return one({x.dtype, out});
}

Types resize_type(const ValueType& x, const Resize2dAttrs& a) {
  const char* op = "resize2d";
  check_floating(x, op);
  check_rank(x, 4, op, "input (NHWC)");
  for (int i = 0; i < 2; ++i) {
    if (x.shape[1 + i] <= 0) {
      throw std::invalid_argument(std::string(op) + ": cannot resize the empty image of input " + describe(x) + " to " +
                                  shape_str({a.size[0], a.size[1]}));
    }
  }
  ValueType y{x.dtype, {x.shape[0], a.size[0], a.size[1], x.shape[3]}};
  known_elements(y, op);
  return one(y);
}

Types batch_norm_type(const Types& in, const char* op) {
  const ValueType& x = in[0];
  check_floating(x, op);
  if (rank(x) < 2) throw std::invalid_argument(std::string(op) + ": input needs rank >= 2, got " + describe(x));
  int64_t c = x.shape.back();
  const char* names[] = {"gamma", "beta", "moving mean", "moving variance"};
  for (size_t i = 1; i < in.size(); ++i) {
    const ValueType& p = in[i];
    if (p.dtype != DType::f32 || rank(p) != 1 || p.shape[0] != c) {
      throw std::invalid_argument(std::string(op) + ": " + names[i - 1] + " must be f32[" + std::to_string(c) +
                                  "] for input " + describe(x) + ", got " + describe(p));
    }
  }
  return one(x);
}

Types softmax_type(const ValueType& x, int axis, const char* op) {
  check_floating(x, op);
  if (rank(x) == 0) throw std::invalid_argument(std::string(op) + ": scalar input " + describe(x));
  normalize_axis(axis, rank(x), x.shape, op);
  return one(x);
}

Types reduce_type(const ValueType& x, const ReduceAttrs& a, const char* op, bool needs_elements) {
  check_floating(x, op);
  std::vector<bool> mask(rank(x), a.axes.empty());
  for (int axis : a.axes) mask[normalize_axis(axis, rank(x), x.shape, op)] = true;
  Shape out;
  for (int i = 0; i < rank(x); ++i) {
    if (!mask[i]) out.push_back(x.shape[i]);
    else if (a.keepdims) out.push_back(1);
  }
  if (needs_elements && known_elements(x, op) == 0) throw std::invalid_argument(std::string(op) + ": empty input " + describe(x));
  return one({x.dtype, out});
}

Types argmax_type(const ValueType& x, int axis) {
  if (rank(x) == 0) throw std::invalid_argument("argmax: scalar input " + describe(x));
  int a = normalize_axis(axis, rank(x), x.shape, "argmax");
  if (x.shape[a] == 0) throw std::invalid_argument("argmax: empty axis in " + describe(x));
  Shape out = x.shape;
  out.erase(out.begin() + a);
  return one({DType::s32, out});
}

Types sparse_xent_type(const Types& in) {
  const char* op = "sparse_softmax_cross_entropy";
  const ValueType &logits = in[0], &labels = in[1];
  check_rank(logits, 2, op, "logits");
  if (logits.dtype != DType::f32) {
    throw std::invalid_argument(std::string(op) + ": expected f32, got " + describe(logits));
  }
  check_rank(labels, 1, op, "labels");
  if (is_floating(labels.dtype)) throw std::invalid_argument(std::string(op) + ": labels must be integers, got " + describe(labels));
  if (labels.shape[0] != logits.shape[0] || logits.shape[1] == 0) {
    throw std::invalid_argument(std::string(op) + ": labels " + describe(labels) + " do not match logits " + describe(logits));
  }
  return one({DType::f32, {}});
}

Types one_hot_type(const ValueType& labels, const OneHotAttrs& a) {
  if (is_floating(labels.dtype)) {
    throw std::invalid_argument("one_hot: labels must be integers (s32, u8, s8), got " + describe(labels));
  }
  if (a.depth <= 0) throw std::invalid_argument("one_hot: depth must be positive, got " + std::to_string(a.depth));
  Shape out = labels.shape;
  out.push_back(a.depth);
  return one({a.dtype, out});
}

Types gather_type(const ValueType& table, const ValueType& indices, int axis_in) {
  const char* op = "gather";
  const int r = rank(table);
  if (r == 0) throw std::invalid_argument("gather: the table must have rank >= 1, got a scalar");
  if (axis_in < -r || axis_in >= r) {
    throw std::invalid_argument("gather: axis " + std::to_string(axis_in) + " is outside [" + std::to_string(-r) +
                                ", " + std::to_string(r) + ") for a table of shape " + describe(table));
  }
  if (is_floating(indices.dtype)) {
    throw std::invalid_argument("gather: indices must be integers (s32, u8, s8), got " + describe(indices));
  }
  const int axis = axis_in < 0 ? axis_in + r : axis_in;
  if (axis == 0 && batched(table)) batch_axis(op, table, "gathering rows");
  if (axis > 0 && batched(indices)) batch_axis(op, indices, "indices placed at axis " + std::to_string(axis));
  Shape out(table.shape.begin(), table.shape.begin() + axis);
  out.insert(out.end(), indices.shape.begin(), indices.shape.end());
  out.insert(out.end(), table.shape.begin() + axis + 1, table.shape.end());
  return one({table.dtype, out});
}

Types layer_norm_type(const Types& in) {
  const char* op = "layer_norm";
  check_floating(in[0], op);
  if (rank(in[0]) < 1) throw std::invalid_argument("layer_norm: input needs rank >= 1, got " + describe(in[0]));
  const int64_t c = in[0].shape.back();
  const char* names[] = {"gamma", "beta"};
  for (int i = 1; i <= 2; ++i) {
    if (in[i].dtype != DType::f32 || rank(in[i]) != 1 || in[i].shape[0] != c) {
      throw std::invalid_argument(std::string("layer_norm: ") + names[i - 1] + " must be f32[" + std::to_string(c) +
                                  "] for input " + describe(in[0]) + ", got " + describe(in[i]));
    }
  }
  return one(in[0]);
}

// tensor/ops/rnn.cc's checks on types: Keras's layouts, states [B, U], mask f32 [B, T].
Types rnn_type(OpKind kind, const Types& in, const RnnAttrs& a) {
  const std::string name = op_kind_name(kind);
  const char* op = name.c_str();
  const size_t states = !a.initial_state ? 0 : kind == OpKind::lstm ? 2 : 1;
  if (in.size() < 4 + states || in.size() > 5 + states) {
    throw std::invalid_argument(name + ": " + std::to_string(in.size()) + " inputs, expected 4 + " +
                                std::to_string(states) + " initial states (initial_state=" +
                                std::to_string(a.initial_state) + ") + an optional mask");
  }
  const int gates = kind == OpKind::lstm ? 4 : kind == OpKind::gru ? 3 : 1;
  const ValueType& x = in[0];
  check_floating(x, op);
  check_rank(x, 3, op, "input");
  for (size_t k = 1; k < 4 + states; ++k) check_floating(in[k], op);
  const ValueType& kernel = in[1];
  if (rank(kernel) != 2 || kernel.shape[0] != x.shape[2] || kernel.shape[1] % gates != 0 || kernel.shape[1] == 0) {
    throw std::invalid_argument(name + ": kernel must be [" + std::to_string(x.shape[2]) + ", " + std::to_string(gates) +
                                " * units] with units >= 1 for input " + describe(x) + ", got " + describe(kernel));
  }
  const int64_t u = kernel.shape[1] / gates, b = x.shape[0], t = x.shape[1];
  auto expect = [&](const ValueType& v, const Shape& want, const char* what) {
    if (v.shape != want) {
      throw std::invalid_argument(name + ": " + what + " must be " + describe(ValueType{v.dtype, want}) +
                                  "-shaped for input " + describe(x) + " and kernel " + describe(kernel) + ", got " +
                                  describe(v));
    }
  };
  expect(in[2], {u, gates * u}, "recurrent_kernel");
  expect(in[3], kind == OpKind::lstm ? Shape{4 * u} : kind == OpKind::gru ? Shape{2, 3 * u} : Shape{u}, "bias");
  for (size_t k = 4; k < 4 + states; ++k) expect(in[k], {b, u}, "an initial state");
  if (in.size() > 4 + states && (in.back().dtype != DType::f32 || in.back().shape != Shape{b, t})) {
    throw std::invalid_argument(name + ": mask must be f32 [batch, time] for input " + describe(x) + ", got " +
                                describe(in.back()));
  }
  Types out{{x.dtype, {b, t, u}}, {x.dtype, {b, u}}};
  if (kind == OpKind::lstm) out.push_back({x.dtype, {b, u}});
  return out;
}

// reshape's shape resolution (shape_ops.cc) with trace's symbolic batch: 0 copies the input's
// dimension, the batch included, and the element counts outside the batch must agree.
Types reshape_type(const ValueType& x, const ReshapeAttrs& a) {
  Shape shape = a.shape;
  bool batch_out = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && static_cast<int>(i) < rank(x)) shape[i] = x.shape[i];
  }
  // The batch may only be copied into dimension 0 (the input's dimension 0 is the only one).
  if (batched(x) && !shape.empty() && shape[0] == kSymbolicBatch && !a.shape.empty() && a.shape[0] == 0) {
    batch_out = true;
  }
  int infer = -1;
  Shape known_dims;
  for (int i = batch_out ? 1 : 0; i < static_cast<int>(shape.size()); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw std::invalid_argument("reshape: more than one -1 in " + shape_str(a.shape));
      infer = i;
    } else if (shape[i] < 0) {
      throw std::invalid_argument("reshape: invalid dimension in " + shape_str(a.shape));
    } else {
      known_dims.push_back(shape[i]);
    }
  }
  checked_nbytes(known_dims, 1, "reshape: target shape " + shape_str(a.shape));
  const int64_t known = numel(known_dims), elements = known_elements(x, "reshape");
  auto fail = [&] {
    throw std::invalid_argument("reshape: cannot reshape " + describe(x) + " (" + (batched(x) ? "N x " : "") +
                                std::to_string(elements) + " elements) into " + shape_str(a.shape));
  };
  if (batched(x) && !batch_out) {
    // N x elements must equal known (x the -1) for every batch: only a -1 standing for the
    // batch itself can say so, and a graph value has no dimension "a multiple of N".
    if (infer < 0 || known != elements) fail();
    shape[infer] = kSymbolicBatch;
    return one({x.dtype, shape});
  }
  if (infer >= 0) {
    if (known == 0 || elements % known != 0) fail();
    shape[infer] = elements / known;
  } else if (known != elements) {
    fail();
  }
  return one({x.dtype, shape});
}

Types permute_type(const ValueType& x, const std::vector<int>& perm) {
  if (static_cast<int>(perm.size()) != rank(x)) {
    throw std::invalid_argument("permute: permutation of length " + std::to_string(perm.size()) + " for tensor " +
                                describe(x));
  }
  if (perm.size() > 64) throw std::invalid_argument("permute: rank above 64 for " + describe(x));
  std::vector<bool> seen(perm.size());
  Shape out(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    int p = normalize_axis(perm[i], rank(x), x.shape, "permute");
    if (seen[p]) throw std::invalid_argument("permute: repeated axis in permutation for " + describe(x));
    seen[p] = true;
    if (i != 0 && p == 0 && batched(x)) batch_axis("permute", x, "a permutation");
    out[i] = x.shape[p];
  }
  return one({x.dtype, out});
}

Types slice_type(const ValueType& x, const SliceAttrs& s) {
  int a = normalize_axis(s.axis, rank(x), x.shape, "slice");
  int64_t n = x.shape[a], start = s.start, end = s.end;
  if (s.step <= 0) throw std::invalid_argument("slice: step must be positive, got " + std::to_string(s.step));
  if (n == kSymbolicBatch) batch_axis("slice", x, "a slice");
  if (start < 0) start += n;
  if (end < 0) end += n;
  end = std::min(end, n);
  if (start < 0 || start > n || end < start) {
    throw std::out_of_range("slice: range [" + std::to_string(start) + ", " + std::to_string(end) +
                            ") is invalid for axis " + std::to_string(s.axis) + " of " + describe(x));
  }
  Shape out = x.shape;
  out[a] = (end - start) / s.step + ((end - start) % s.step != 0);
  return one({x.dtype, out});
}

Types broadcast_to_type(const ValueType& x, const Shape& shape) {
  if (x.shape == shape) return one(x);
  checked_nbytes(shape, dtype_size(x.dtype), "broadcast_to");
  Shape full = broadcast_shapes(x.shape, shape, "broadcast_to");
  if (full != shape) {
    throw std::invalid_argument("broadcast_to: cannot broadcast " + describe(x) + " to " + shape_str(shape));
  }
  return one({x.dtype, shape});
}

Types concat_type(const Types& in, int axis) {
  const ValueType& first = in[0];
  if (rank(first) == 0) throw std::invalid_argument("concat: cannot concatenate scalars");
  int a = normalize_axis(axis, rank(first), first.shape, "concat");
  Shape out = first.shape;
  out[a] = 0;
  for (const ValueType& t : in) {
    check_same_dtype(first, t, "concat");
    if (rank(t) != rank(first)) throw std::invalid_argument("concat: ranks differ: " + describe(first) + " vs " + describe(t));
    for (int i = 0; i < rank(t); ++i) {
      if (i != a && t.shape[i] != first.shape[i]) {
        throw std::invalid_argument("concat: shapes " + describe(first) + " and " + describe(t) + " differ outside axis " +
                                    std::to_string(axis));
      }
    }
    if (t.shape[a] == kSymbolicBatch) batch_axis("concat", t, "a concatenation");
    if (__builtin_add_overflow(out[a], t.shape[a], &out[a])) {
      throw std::invalid_argument("concat: the sizes along axis " + std::to_string(axis) + " overflow");
    }
  }
  return one({first.dtype, out});
}

// The batch keeps its size: padding or cropping it is refused, as slicing it is.
Types pad_type(const ValueType& x, const PadAttrs& a) {
  Shape s = x.shape;
  if (batched(x)) {
    if (!a.before.empty() && (a.before[0] != 0 || (a.after.size() > 0 && a.after[0] != 0))) {
      batch_axis("pad", x, "a pad (" + std::to_string(a.before[0]) + ", " +
                               std::to_string(a.after.empty() ? 0 : a.after[0]) + ")");
    }
    s[0] = 1;
  }
  Shape out = padded_shape(s, x.dtype, a, describe(x));
  if (batched(x)) out[0] = kSymbolicBatch;
  return one({x.dtype, out});
}

template <OpKind K, typename F>
InferFn typed(F f) {
  return [f](const Types& in, const Attrs& a) { return f(in, parse_attrs<AttrsOf<K>>(a)); };
}

InferFn binary(const char* op) {
  return [op](const Types& in, const Attrs&) { return binary_type(in, op); };
}

InferFn reduce(const char* op, bool needs_elements) {
  return [=](const Types& in, const Attrs& a) { return reduce_type(in[0], parse_attrs<ReduceAttrs>(a), op, needs_elements); };
}

InferFn same_type() {
  return [](const Types& in, const Attrs&) { return one(in[0]); };
}

InferFn infer_of(OpKind kind) {
  using K = OpKind;
  switch (kind) {
    case K::add: return binary("add");
    case K::sub: return binary("sub");
    case K::mul: return binary("mul");
    case K::div: return binary("div");
    case K::maximum: return binary("maximum");
    case K::minimum: return binary("minimum");
    case K::add_relu:
      return [](const Types& in, const Attrs&) {
        // add_relu checks as add does and broadcasts under its own name.
        if (in[0].dtype == in[1].dtype && is_floating(in[0].dtype)) {
          broadcast_shapes(in[0].shape, in[1].shape, "add_relu");
        }
        return binary_type(in, "add");
      };
    case K::equal: return binary("equal");
    case K::greater: return binary("greater");
    case K::greater_equal: return binary("greater_equal");
    case K::less: return binary("less");
    case K::matmul:
      return [](const Types& in, const Attrs&) { return matmul_type(in); };
    case K::scaled_dot_product_attention:
      return typed<K::scaled_dot_product_attention>([](const Types& in, const AttentionAttrs& a) { return attention_type(in, a); });
    case K::linear:
      return typed<K::linear>([](const Types& in, const LinearAttrs&) {
        return one(linear_type(in[0], in[1], optional(in, 2), "linear"));
      });
    case K::conv2d:
      return typed<K::conv2d>([](const Types& in, const Conv2dAttrs& a) {
        return one(conv_type(in[0], in[1], optional(in, 2), a, "conv2d"));
      });
    case K::fused_conv2d:
      return typed<K::fused_conv2d>([](const Types& in, const FusedConv2dAttrs& a) {
        if (a.conv.activation != FusedActivation::none) {
          throw std::invalid_argument("fused_conv2d: the activation belongs to the epilogue, not to the conv attributes");
        }
        ValueType y = conv_type(in[0], in[1], optional(in, 2), a.conv, "conv2d");
        if (const ValueType* r = optional(in, 3)) check_residual(y, *r, "fused_conv2d");
        return one(y);
      });
    case K::fused_linear:
      return typed<K::fused_linear>([](const Types& in, const FusedLinearAttrs&) {
        ValueType y = linear_type(in[0], in[1], optional(in, 2), "linear");
        if (const ValueType* r = optional(in, 3)) check_residual(y, *r, "fused_linear");
        return one(y);
      });
    case K::quantize_linear:
      return typed<K::quantize_linear>([](const Types& in, const QuantizeAttrs& a) {
        if (in[0].dtype != DType::f32 && in[0].dtype != DType::bf16) {
          throw std::invalid_argument("quantize_linear: input must be f32 or bf16, got " + describe(in[0]));
        }
        return one({a.dtype, in[0].shape});
      });
    case K::dequantize_linear:
      return typed<K::dequantize_linear>([](const Types& in, const DequantizeAttrs&) {
        if (!is_int8(in[0].dtype)) throw std::invalid_argument("dequantize_linear: input must be u8 or s8, got " + describe(in[0]));
        return one({DType::f32, in[0].shape});
      });
    case K::qconv2d:
      return typed<K::qconv2d>([](const Types& in, const QConv2dAttrs& a) {
        Conv2dAttrs plain = a.conv;
        plain.activation = FusedActivation::none;
        const ValueType* bias = optional(in, 2);
        return one(quantized_type(in, a.q, "qconv2d", 4, [&](const ValueType& x, const ValueType& w) {
          return conv_type(x, w, bias, plain, "conv2d");
        }));
      });
    case K::qlinear:
      return typed<K::qlinear>([](const Types& in, const QLinearAttrs& a) {
        const ValueType* bias = optional(in, 2);
        return one(quantized_type(in, a.q, "qlinear", 2, [&](const ValueType& x, const ValueType& w) {
          return linear_type(x, w, bias, "linear");
        }));
      });
    case K::max_pool2d:
      return typed<K::max_pool2d>([](const Types& in, const Pool2dAttrs& a) { return one(pool_type(in[0], a, "max_pool2d")); });
    case K::avg_pool2d:
      return typed<K::avg_pool2d>([](const Types& in, const Pool2dAttrs& a) { return one(pool_type(in[0], a, "avg_pool2d")); });
    case K::batch_norm:
      return [](const Types& in, const Attrs&) { return batch_norm_type(in, "batch_norm"); };
    case K::batch_norm_inference:
      return [](const Types& in, const Attrs&) { return batch_norm_type(in, "batch_norm_inference"); };
    case K::softmax:
      return typed<K::softmax>([](const Types& in, const AxisAttrs& a) { return softmax_type(in[0], a.axis, "softmax"); });
    case K::log_softmax:
      return typed<K::log_softmax>([](const Types& in, const AxisAttrs& a) { return softmax_type(in[0], a.axis, "log_softmax"); });
    case K::sparse_softmax_cross_entropy:
      return [](const Types& in, const Attrs&) { return sparse_xent_type(in); };
    case K::reduce_sum: return reduce("reduce_sum", false);
    case K::reduce_mean: return reduce("reduce_mean", false);
    case K::reduce_max: return reduce("reduce_max", true);
    case K::argmax:
      return typed<K::argmax>([](const Types& in, const AxisAttrs& a) { return argmax_type(in[0], a.axis); });
    case K::cast:
      return typed<K::cast>([](const Types& in, const CastAttrs& a) { return one({a.dtype, in[0].shape}); });
    case K::one_hot:
      return typed<K::one_hot>([](const Types& in, const OneHotAttrs& a) { return one_hot_type(in[0], a); });
    case K::reshape:
      return typed<K::reshape>([](const Types& in, const ReshapeAttrs& a) { return reshape_type(in[0], a); });
    case K::permute:
      return typed<K::permute>([](const Types& in, const PermuteAttrs& a) { return permute_type(in[0], a.perm); });
    case K::slice:
      return typed<K::slice>([](const Types& in, const SliceAttrs& a) { return slice_type(in[0], a); });
    case K::contiguous: return same_type();
    case K::identity: return same_type();
    case K::broadcast_to:
      return typed<K::broadcast_to>([](const Types& in, const BroadcastToAttrs& a) { return broadcast_to_type(in[0], a.shape); });
    case K::concat:
      return typed<K::concat>([](const Types& in, const AxisAttrs& a) { return concat_type(in, a.axis); });
    case K::gather:
      return typed<K::gather>([](const Types& in, const AxisAttrs& a) { return gather_type(in[0], in[1], a.axis); });
    case K::layer_norm:
      return typed<K::layer_norm>([](const Types& in, const LayerNormAttrs&) { return layer_norm_type(in); });
    case K::conv_transpose2d:
      return typed<K::conv_transpose2d>([](const Types& in, const ConvTranspose2dAttrs& a) { return conv_transpose_type(in, a); });
    case K::resize2d:
      return typed<K::resize2d>([](const Types& in, const Resize2dAttrs& a) { return resize_type(in[0], a); });
    case K::pad:
      return typed<K::pad>([](const Types& in, const PadAttrs& a) { return pad_type(in[0], a); });
    case K::where:
      return [](const Types& in, const Attrs&) {
        if (!is_floating(in[0].dtype) && in[0].dtype != DType::u8) {
          throw std::invalid_argument("where: the condition must be f32, bf16 or u8 (1/0), got " + describe(in[0]));
        }
        ValueType values = binary_type({in[1], in[2]}, "where")[0];
        return one({values.dtype, broadcast_shapes(in[0].shape, values.shape, "where")});
      };
    case K::logical_not:
      return [](const Types& in, const Attrs&) { return check_floating(in[0], "logical_not"), one(in[0]); };
    case K::logical_and: return binary("logical_and");
    case K::logical_or: return binary("logical_or");
    case K::erf: return [](const Types& in, const Attrs&) { return check_floating(in[0], "erf"), one(in[0]); };
    KILN_RNN_OPS(KILN_OP_CASE)
    return [kind](const Types& in, const Attrs& a) { return rnn_type(kind, in, parse_attrs<RnnAttrs>(a)); };
    KILN_ELTWISE_OPS(KILN_OP_CASE) {
      std::string op = op_kind_name(kind);
      const bool parameterless = eltwise_takes_no_parameters(*eltwise_kind_of(kind));
      return [op, parameterless](const Types& in, const Attrs& a) {
        EltwiseAttrs p = parse_attrs<EltwiseAttrs>(a);
        if (parameterless && (p.alpha != 0.f || p.beta != 0.f)) {
          throw std::invalid_argument(op + ": takes no parameters, got alpha " + std::to_string(p.alpha) + " and beta " +
                                      std::to_string(p.beta) + " (both must be 0)");
        }
        check_floating(in[0], op.c_str());
        return one(in[0]);
      };
    }
  }
  throw std::logic_error(std::string("op kind ") + op_kind_name(kind) + " has no shape inference");
}

}  // namespace

std::string describe(const ValueType& v) {
  std::string s = std::string(dtype_name(v.dtype)) + "[";
  for (size_t i = 0; i < v.shape.size(); ++i) {
    s += (i ? ", " : "") + (i == 0 && v.shape[i] == kSymbolicBatch ? std::string("N") : std::to_string(v.shape[i]));
  }
  return s + "]";
}

void check_value_type(const ValueType& v, const std::string& what) {
  for (size_t i = 0; i < v.shape.size(); ++i) {
    if (v.shape[i] < 0 && !(i == 0 && v.shape[i] == kSymbolicBatch)) {
      throw std::invalid_argument(what + " " + describe(v) + " has dimension " + std::to_string(i) + " of " +
                                  std::to_string(v.shape[i]));
    }
  }
  Shape s = v.shape;
  if (!s.empty() && s[0] == kSymbolicBatch) s[0] = 1;
  checked_nbytes(s, dtype_size(v.dtype), what + " " + describe(v));
}

InferFn infer_function_of(OpKind kind) { return infer_of(kind); }

std::vector<ValueType> infer_op(const Attrs& call, const std::vector<ValueType>& inputs) {
  const OpDef& def = op_def(call.kind());
  check_arity(def, static_cast<int>(inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) check_value_type(inputs[i], def.name + ": input " + std::to_string(i));
  std::vector<ValueType> out = def.infer(inputs, call);
  for (const ValueType& v : out) check_value_type(v, def.name + ": output");
  return out;
}

}  // namespace kiln::ops
