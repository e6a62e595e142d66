// One table-driven test for every registered op kind, as ggml's test-backend-ops does
// (docs/architecture.md, "The op registry"). Each row of rows() is keyed by a registered op's name and
// says how to make the op's inputs, a few attribute variants ("cases"), a double-precision
// reference and whether the op is differentiable. Every case runs through ops::run_op (the
// path Graph::run, passes and exporters take) and is checked for:
//   - forward f32 and bf16 against the reference, with the row's tolerances;
//   - finite-difference gradients through the tape (differentiable ops, f32), or no gradient
//     at all (the others);
//   - bad input: a wrong input count, and a wrong-rank or wrong-dtype input, throw
//     std::invalid_argument or std::out_of_range naming the op or the shapes;
//   - graph::trace of the call is one node whose Graph::run equals the eager result bit for
//     bit: the op records its attributes under the names its registry row reads.
// OpTable.EveryRegisteredOpHasARow fails when a registered op has no row, or a row names an
// op that is not registered. Adding an op means adding its row here. Defects the table found
// and nobody fixed yet are listed per case (Case::known_defects) and print as [  KNOWN   ].
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "autograd/gradient_tape.h"
#include "graph/trace.h"
#include "tensor/ops/ops.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/registry.h"
#include "tests/tensor_compare.h"
#include "tests/gradcheck.h"
#include "tests/pad_reference.h"
#include "tests/rnn_reference.h"
#include "tests/upsampling_reference.h"

namespace kiln {
namespace {

using testing::bitwise_equal;

using ops::Attrs;
using ref::RefTensor;
using testing::Tolerance;
using Ints = std::vector<int64_t>;
using Refs = std::vector<RefTensor>;

// How to make one input.
struct In {
  Shape shape;
  float low = -1.f, high = 1.f;  // uniform range: keeps log, sqrt and div in their domains
  DType dtype = DType::f32;      // integer dtypes hold integers in [low, high)
  bool integral = false;         // f32 holding integers, so that comparisons see ties
  bool transposed = false;       // a strided view (last two axes swapped): the copying paths
  bool bf16 = true;              // false: stays f32 in the bf16 pass (batch norm's parameters)
  bool grad = true;              // false: the op gives it no gradient (batch norm's statistics)
};

// One attribute variant of a row.
struct Case {
  Attrs attrs;
  std::vector<In> inputs;
  // A defect found by this table and not fixed yet, keyed by check ("bf16", "gradients",
  // "trace"): that check is expected to fail for this case, and fails the test once it
  // passes, so that the note is removed with the fix.
  std::map<std::string, std::string> known_defects = {};
};

using RefFn = std::function<RefTensor(const Refs& inputs, const Attrs& attrs)>;
using BadFn = std::function<std::vector<std::vector<Tensor>>(const std::vector<Tensor>& good)>;

struct Row {
  std::string op;  // the registered name
  std::vector<Case> cases;
  RefFn ref;
  bool differentiable = true;  // must agree with the registry
  Tolerance f32 = testing::kF32;
  std::optional<Tolerance> bf16 = testing::kBf16;  // nullopt: the op takes no floating input
  Tolerance grad{1e-3, 1e-3};
  // Wrong-rank or wrong-dtype variants of case 0's inputs; unset: its first floating input as
  // s32. An empty list says every rank and dtype is valid (only the count can be wrong).
  BadFn bad;
  std::function<DType(const Attrs&, DType input)> out_dtype;  // unset: the input's dtype
};

// ---------------------------------------------------------------------------------------
// Small references and helpers the rows share.

int axis_of(int64_t axis, size_t ndim) { return static_cast<int>(axis < 0 ? axis + static_cast<int64_t>(ndim) : axis); }

RefTensor relu_ref(const RefTensor& x) {
  return ref::unary(x, [](double v) { return std::max(v, 0.0); });
}

RefTensor first(const Refs& x, const Attrs&) { return x[0]; }

std::vector<Tensor> with(std::vector<Tensor> inputs, size_t i, const Tensor& t) {
  inputs[i] = t;
  return inputs;
}

DType attr_dtype(const Attrs& a, DType) { return dtype_from_name(a.get_string("dtype")); }

// Elementwise rows: f(x, alpha, beta) on a [3, 17] input in [low, high), one case per
// (alpha, beta), plus the first (alpha, beta) on a strided view.
Row eltwise_row(const std::string& name, double (*f)(double, double, double), float low, float high,
                std::vector<std::pair<float, float>> alpha_beta = {{0.f, 0.f}}) {
  Row row{.op = name, .ref = [f](const Refs& x, const Attrs& a) {
            double alpha = a.get_float("alpha"), beta = a.get_float("beta");
            return ref::unary(x[0], [=](double v) { return f(v, alpha, beta); });
          }};
  for (auto [alpha, beta] : alpha_beta) {
    row.cases.push_back(
        {Attrs(name).set("alpha", alpha).set("beta", beta), {In{.shape = {3, 17}, .low = low, .high = high}}});
  }
  auto [alpha, beta] = alpha_beta[0];
  row.cases.push_back({Attrs(name).set("alpha", alpha).set("beta", beta),
                       {In{.shape = {4, 5}, .low = low, .high = high, .transposed = true}}});
  return row;
}

// Binary cases: same shapes and three kinds of broadcasting. The second operand is positive
// (div stays away from 0); comparisons get integers in [-2, 3) on both sides, so ties occur.
std::vector<Case> binary_cases(const std::string& name, bool comparison) {
  std::vector<Case> cases;
  for (auto [a, b] : std::vector<std::pair<Shape, Shape>>{
           {{3, 4}, {3, 4}}, {{2, 3, 4}, {4}}, {{3, 1}, {1, 4}}, {{4, 1, 3}, {2, 1}}}) {
    In lhs{.shape = a, .low = comparison ? -2.f : -1.f, .high = comparison ? 3.f : 1.f, .integral = comparison};
    In rhs{.shape = b, .low = comparison ? -2.f : 0.5f, .high = comparison ? 3.f : 2.f, .integral = comparison};
    cases.push_back({Attrs(name), {lhs, rhs}});
  }
  return cases;
}

Row binary_row(const std::string& name, double (*f)(double, double)) {
  return {.op = name, .cases = binary_cases(name, false), .ref = [f](const Refs& x, const Attrs&) {
            return ref::binary(x[0], x[1], f);
          }};
}

// Comparisons give 1 or 0 in the inputs' dtype, and no gradient.
Row comparison_row(const std::string& name, bool (*f)(double, double)) {
  return {.op = name,
          .cases = binary_cases(name, true),
          .ref =
              [f](const Refs& x, const Attrs&) {
                return ref::binary(x[0], x[1], [f](double a, double b) { return f(a, b) ? 1.0 : 0.0; });
              },
          .differentiable = false};
}

Attrs conv_attrs(Ints strides, const char* padding, Ints dilation, int groups, const char* activation) {
  return Attrs("conv2d")
      .set("strides", strides)
      .set("padding", padding)
      .set("dilation", dilation)
      .set("groups", groups)
      .set("activation", activation);
}

RefTensor conv_ref(const Refs& x, const Attrs& a) {
  ref::ConvParams p;
  const Ints &s = a.get_ints("strides"), &d = a.get_ints("dilation");
  p.strides = {s[0], s[1]};
  p.dilation = {d[0], d[1]};
  p.same = a.get_string("padding") == "same";
  p.groups = a.get_int("groups");
  RefTensor y = ref::conv2d(x[0], x[1], x.size() > 2 ? &x[2] : nullptr, p);
  return a.get_string("activation") == "relu" ? relu_ref(y) : y;
}

Attrs conv_transpose_attrs(Ints strides, const char* padding, Ints output_padding, Ints dilation) {
  return Attrs("conv_transpose2d")
      .set("strides", strides)
      .set("padding", padding)
      .set("output_padding", output_padding)
      .set("dilation", dilation);
}

Attrs fused_conv_attrs(Ints strides, const char* padding, int groups, const char* activation) {
  Attrs a = conv_attrs(strides, padding, {1, 1}, groups, activation);
  a.set_op("fused_conv2d");
  return a;
}

// The epilogue of fused_conv2d / fused_linear over the plain result y: + residual (input 3),
// then the activation.
RefTensor fused_ref(RefTensor y, const Refs& x, const Attrs& a) {
  const std::string& act = a.get_string("activation");
  if (x.size() > 3) y = ref::binary(y, x[3], [](double p, double q) { return p + q; });
  if (act == "relu") return relu_ref(y);
  if (act == "gelu_erf") return ref::unary(y, [](double v) { return ref::gelu_erf(v); });
  if (act == "gelu_tanh") return ref::unary(y, [](double v) { return ref::gelu_tanh(v); });
  return y;
}

// Quantized rows: the double-precision meaning of quantize/dequantize and of the int8
// conv/dense epilogue (dequantize, float op, + residual, activation, quantize).
double quantize_ref(double x, double scale, double zero_point, const std::string& dtype) {
  double lo = dtype == "u8" ? 0 : -128, hi = dtype == "u8" ? 255 : 127;
  return std::min(hi, std::max(lo, std::nearbyint(x / scale) + zero_point));
}

RefTensor scaled(RefTensor t, double s) {
  for (double& v : t.data) v *= s;
  return t;
}

RefTensor quantized_ref(const Refs& x, const Attrs& a, bool conv) {
  const std::vector<double>& ws = a.get_floats("w_scales");
  RefTensor w = x[1];
  for (int64_t i = 0; i < w.size(); ++i) w.data[i] *= ws[i % ws.size()];
  Refs f{scaled(x[0], a.get_float("x_scale")), w};
  if (x.size() > 2) f.push_back(x[2]);
  RefTensor y;
  if (conv) {
    Attrs plain = a;
    plain.set("activation", "none");
    y = conv_ref(f, plain);
  } else {
    y = ref::linear(f[0], f[1], f.size() > 2 ? &f[2] : nullptr, false);
  }
  Refs with_residual{y, y, y};
  if (x.size() > 3) with_residual.push_back(scaled(x[3], a.get_float("residual_scale")));
  y = fused_ref(y, with_residual, a);
  const std::string& out = a.get_string("out_dtype");
  if (out == "f32") return y;
  for (double& v : y.data) v = quantize_ref(v, a.get_float("out_scale"), 0, out);
  return y;
}

Attrs quantized_epilogue(Attrs a, const char* activation, double x_scale, std::vector<double> w_scales,
                         const char* out_dtype, double out_scale) {
  if (a.op() == "fused_conv2d") a.set_op("qconv2d");
  return a.set("activation", activation)
      .set("x_scale", ops::AttrValue(x_scale))
      .set("w_scales", w_scales)
      .set("residual_scale", ops::AttrValue(0.05))
      .set("out_scale", ops::AttrValue(out_scale))
      .set("out_dtype", out_dtype);
}

// Pooling rows: Keras's default strides (0: the pool size), 'same' with overlapping windows,
// and an asymmetric window.
Row pool_row(const std::string& name, bool is_max) {
  auto attrs = [&](Ints pool, Ints strides, const char* padding) {
    return Attrs(name).set("pool_size", pool).set("strides", strides).set("padding", padding);
  };
  In x{.shape = {2, 5, 6, 3}};
  return {.op = name,
          .cases = {{attrs({2, 2}, {0, 0}, "valid"), {x}},
                    {attrs({3, 3}, {2, 2}, "same"), {x}},
                    {attrs({2, 3}, {1, 2}, "valid"), {x}}},
          .ref =
              [is_max](const Refs& x, const Attrs& a) {
                ref::PoolParams p;
                const Ints &k = a.get_ints("pool_size"), &s = a.get_ints("strides");
                p.pool = {k[0], k[1]};
                p.strides = {s[0] ? s[0] : k[0], s[1] ? s[1] : k[1]};
                p.same = a.get_string("padding") == "same";
                return is_max ? ref::max_pool2d(x[0], p) : ref::avg_pool2d(x[0], p);
              },
          .bad =
              [](const std::vector<Tensor>&) {
                return std::vector<std::vector<Tensor>>{{Tensor::zeros({5, 6, 3})},
                                                        {Tensor::zeros({2, 5, 6, 3}, DType::s32)}};
              }};
}

// ref::matmul with numpy's rule for 1-D operands.
RefTensor vector_matmul_ref(RefTensor a, RefTensor b) {
  bool row = a.shape.size() == 1, col = b.shape.size() == 1;
  if (row) a.shape.insert(a.shape.begin(), 1);
  if (col) b.shape.push_back(1);
  RefTensor y = ref::matmul(a, b);
  if (col) y.shape.pop_back();
  if (row) y.shape.erase(y.shape.end() - (col ? 1 : 2));
  return y;
}

Attrs attention_attrs(double scale, bool causal, const char* mask_kind) {
  return Attrs("scaled_dot_product_attention").set("scale", ops::AttrValue(scale)).set("causal", causal).set("mask_kind", mask_kind);
}

// q [2, 3, 4, 5], k [2, 3, 6, 5], v [2, 3, 6, 7]; masks broadcast from [2, 1, 4, 6] and [6];
// a boolean mask of random 1/0s leaves some queries with no key (uniform weights).
Row attention_row() {
  In q{.shape = {2, 3, 4, 5}}, k{.shape = {2, 3, 6, 5}}, v{.shape = {2, 3, 6, 7}};
  In bool_mask{.shape = {2, 1, 4, 6}, .low = 0.f, .high = 2.f, .integral = true, .grad = false};
  In additive{.shape = {6}, .low = -2.f, .high = 2.f};
  return {.op = "scaled_dot_product_attention",
          .cases = {{attention_attrs(1 / std::sqrt(5.0), false, "boolean"), {q, k, v}},
                    {attention_attrs(0.7, true, "boolean"), {q, k, v}},
                    {attention_attrs(0.5, false, "boolean"), {q, k, v, bool_mask}},
                    {attention_attrs(0.5, true, "additive"), {q, k, v, additive}},
                    {attention_attrs(1.0, false, "additive"), {In{.shape = {4, 5}, .transposed = true}, In{.shape = {3, 5}}, In{.shape = {3, 2}}, In{.shape = {4, 3}}}}},
          .ref =
              [](const Refs& x, const Attrs& a) {
                return ref::attention(x[0], x[1], x[2], x.size() > 3 ? &x[3] : nullptr, a.get_float("scale"),
                                      a.get_int("causal") != 0, a.get_string("mask_kind") == "boolean");
              },
          .bf16 = Tolerance{5e-2, 3e-2},
          .grad = Tolerance{2e-3, 2e-3}};
}

// x [2, 5, 3], units 4: without initial states; with them read backwards; zero outputs for a
// mask (none here) on a strided input.
Row rnn_row(const std::string& name, int gates) {
  const int64_t u = 4, b = 2, t = 5, i = 3;
  In x{.shape = {b, t, i}}, kernel{.shape = {i, gates * u}, .low = -0.6f, .high = 0.6f};
  In recurrent{.shape = {u, gates * u}, .low = -0.6f, .high = 0.6f};
  In bias{.shape = name == "lstm" ? Shape{4 * u} : name == "gru" ? Shape{2, 3 * u} : Shape{u}, .low = -0.5f, .high = 0.5f};
  In state{.shape = {b, u}};
  std::vector<In> with_states{x, kernel, recurrent, bias, state};
  if (name == "lstm") with_states.push_back(state);
  auto attrs = [name](bool initial, bool backwards, bool zero) {
    return Attrs(name).set("initial_state", initial).set("go_backwards", backwards).set("zero_output_for_mask", zero);
  };
  return {.op = name,
          .cases = {{attrs(false, false, false), {x, kernel, recurrent, bias}},
                    {attrs(true, true, false), with_states},
                    {attrs(false, false, true), {In{.shape = {b, t, i}, .transposed = true}, kernel, recurrent, bias}}},
          .ref =
              [name](const Refs& v, const Attrs& a) {
                const bool initial = a.get_int("initial_state") != 0;
                ref::RnnRefOptions o{name, a.get_int("go_backwards") != 0, a.get_int("zero_output_for_mask") != 0};
                return ref::rnn(o, v[0], v[1], v[2], v[3], initial ? &v[4] : nullptr,
                                initial && name == "lstm" ? &v[5] : nullptr, nullptr)[0];
              },
          .f32 = Tolerance{2e-5, 2e-4},
          .bf16 = Tolerance{5e-2, 5e-2},
          .grad = Tolerance{2e-3, 2e-3}};
}

Row softmax_row(const std::string& name, bool log) {
  In x{.shape = {2, 3, 5}, .low = -3.f, .high = 3.f};
  return {.op = name,
          .cases = {{Attrs(name).set("axis", -1), {x}},
                    {Attrs(name).set("axis", 0), {x}},
                    {Attrs(name).set("axis", 1), {x}}},
          .ref = [log](const Refs& x, const Attrs& a) {
            return ref::softmax(x[0], static_cast<int>(a.get_int("axis")), log);
          }};
}

// Reduce rows: every axis, one axis kept, and two axes (one negative) dropped.
Row reduce_row(const std::string& name, ref::Reduce kind) {
  auto attrs = [&](Ints axes, bool keepdims) { return Attrs(name).set("axes", axes).set("keepdims", keepdims); };
  In x{.shape = {3, 4, 5}};
  return {.op = name,
          .cases = {{attrs({}, false), {x}}, {attrs({1}, true), {x}}, {attrs({0, -1}, false), {x}}},
          .ref =
              [kind](const Refs& x, const Attrs& a) {
                const Ints& axes = a.get_ints("axes");
                return ref::reduce(x[0], std::vector<int>(axes.begin(), axes.end()), a.get_int("keepdims") != 0, kind);
              },
          .bf16 = Tolerance{5e-2, 2e-2}};
}

RefTensor argmax_ref(const Refs& x, const Attrs& a) {
  const RefTensor& t = x[0];
  int axis = axis_of(a.get_int("axis"), t.shape.size());
  int64_t len = t.shape[axis], inner = 1;
  for (size_t d = axis + 1; d < t.shape.size(); ++d) inner *= t.shape[d];
  int64_t outer = t.size() / (len * inner);
  Shape out_shape = t.shape;
  out_shape.erase(out_shape.begin() + axis);
  RefTensor out{out_shape, std::vector<double>(outer * inner)};
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t best = 0;  // the first of tied maxima, as std::max_element gives
      for (int64_t l = 1; l < len; ++l) {
        if (t.data[(o * len + l) * inner + i] > t.data[(o * len + best) * inner + i]) best = l;
      }
      out.data[o * inner + i] = static_cast<double>(best);
    }
  return out;
}

// ---------------------------------------------------------------------------------------
// The table: one row per registered op kind.

const std::vector<Row>& rows() {
  static const auto* table = new std::vector<Row>{
      binary_row("add", [](double a, double b) { return a + b; }),
      binary_row("sub", [](double a, double b) { return a - b; }),
      binary_row("mul", [](double a, double b) { return a * b; }),
      binary_row("div", [](double a, double b) { return a / b; }),
      binary_row("maximum", [](double a, double b) { return std::max(a, b); }),
      binary_row("minimum", [](double a, double b) { return std::min(a, b); }),
      // Same shapes take Kiln's own kernel, broadcasting oneDNN's add with a ReLU post-op.
      binary_row("add_relu", [](double a, double b) { return std::max(a + b, 0.0); }),
      comparison_row("equal", [](double a, double b) { return a == b; }),
      comparison_row("greater", [](double a, double b) { return a > b; }),
      comparison_row("greater_equal", [](double a, double b) { return a >= b; }),
      comparison_row("less", [](double a, double b) { return a < b; }),

      {.op = "matmul",
       .cases = {{Attrs("matmul"), {In{.shape = {5, 7}}, In{.shape = {7, 3}}}},
                 {Attrs("matmul"), {In{.shape = {2, 5, 7}}, In{.shape = {7, 3}}}},
                 {Attrs("matmul"), {In{.shape = {3, 1, 4, 6}}, In{.shape = {2, 6, 5}}}},
                 {Attrs("matmul"), {In{.shape = {4, 6}, .transposed = true}, In{.shape = {6, 3}, .transposed = true}}},
                 // numpy's vectors: a row on the left, a column on the right, both dropped.
                 {Attrs("matmul"), {In{.shape = {7}}, In{.shape = {2, 7, 3}}}},
                 {Attrs("matmul"), {In{.shape = {2, 5, 7}}, In{.shape = {7}}}},
                 {Attrs("matmul"), {In{.shape = {7}}, In{.shape = {7}}}}},
       .ref = [](const Refs& x, const Attrs&) { return vector_matmul_ref(x[0], x[1]); },
       .bf16 = Tolerance{5e-2, 2e-2},
       .bad =
           [](const std::vector<Tensor>& good) {
             return std::vector<std::vector<Tensor>>{with(good, 0, Tensor::zeros({})), with(good, 0, Tensor::zeros({6})),
                                                     with(good, 0, Tensor::zeros({5, 7}, DType::s32))};
           }},

      attention_row(),

      {.op = "linear",
       .cases = {{Attrs("linear").set("activation", "none"),
                  {In{.shape = {2, 3, 8}}, In{.shape = {8, 5}}, In{.shape = {5}}}},
                 {Attrs("linear").set("activation", "relu"),
                  {In{.shape = {4, 8}}, In{.shape = {8, 5}}, In{.shape = {5}}}},
                 {Attrs("linear").set("activation", "relu"), {In{.shape = {4, 8}}, In{.shape = {8, 5}}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             return ref::linear(x[0], x[1], x.size() > 2 ? &x[2] : nullptr, a.get_string("activation") == "relu");
           },
       .bf16 = Tolerance{5e-2, 2e-2},
       .bad =
           [](const std::vector<Tensor>& good) {
             return std::vector<std::vector<Tensor>>{with(good, 1, Tensor::zeros({8})),
                                                     with(good, 0, Tensor::zeros({2, 3, 8}, DType::s32))};
           }},

      {.op = "conv2d",
       .cases = {{conv_attrs({1, 1}, "valid", {1, 1}, 1, "none"),
                  {In{.shape = {2, 6, 7, 3}}, In{.shape = {3, 3, 3, 4}}, In{.shape = {4}}}},
                 {conv_attrs({2, 2}, "same", {1, 1}, 1, "relu"),
                  {In{.shape = {1, 7, 8, 2}}, In{.shape = {3, 3, 2, 5}}, In{.shape = {5}}}},
                 {conv_attrs({2, 1}, "valid", {1, 1}, 1, "none"),
                  {In{.shape = {1, 7, 8, 2}}, In{.shape = {3, 2, 2, 5}}}},
                 {conv_attrs({1, 1}, "same", {2, 2}, 1, "none"),
                  {In{.shape = {1, 8, 8, 2}}, In{.shape = {3, 3, 2, 3}}, In{.shape = {3}}}},
                 {conv_attrs({1, 1}, "same", {1, 1}, 2, "relu"),
                  {In{.shape = {1, 5, 5, 4}}, In{.shape = {3, 3, 2, 6}}, In{.shape = {6}}}},
                 {conv_attrs({1, 1}, "same", {1, 1}, 3, "none"),
                  {In{.shape = {1, 5, 5, 3}}, In{.shape = {3, 3, 1, 3}}}}},
       .ref = conv_ref,
       .bf16 = Tolerance{6e-2, 3e-2},
       .bad =
           [](const std::vector<Tensor>& good) {
             return std::vector<std::vector<Tensor>>{with(good, 0, Tensor::zeros({6, 7, 3})),
                                                     with(good, 0, Tensor::zeros({2, 6, 7, 3}, DType::s32))};
           }},

      // Inference fusions (runtime_export): conv or dense, + residual, then the epilogue.
      {.op = "fused_conv2d",
       .cases = {{fused_conv_attrs({1, 1}, "same", 1, "relu"),
                  {In{.shape = {2, 5, 6, 3}}, In{.shape = {3, 3, 3, 4}}, In{.shape = {4}}, In{.shape = {2, 5, 6, 4}}}},
                 {fused_conv_attrs({2, 2}, "valid", 1, "gelu_erf"),
                  {In{.shape = {1, 7, 8, 2}}, In{.shape = {3, 3, 2, 5}}, In{.shape = {5}}}},
                 {fused_conv_attrs({1, 1}, "same", 2, "gelu_tanh"),
                  {In{.shape = {1, 5, 5, 4}}, In{.shape = {1, 1, 2, 6}}, In{.shape = {6}}, In{.shape = {1, 5, 5, 6}}}},
                 {fused_conv_attrs({1, 1}, "valid", 1, "none"), {In{.shape = {1, 4, 4, 2}}, In{.shape = {2, 2, 2, 3}}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             Attrs plain = a;
             plain.set("activation", "none");
             return fused_ref(conv_ref(Refs(x.begin(), x.begin() + std::min<size_t>(x.size(), 3)), plain), x, a);
           },
       .differentiable = false,
       .bf16 = Tolerance{6e-2, 3e-2},
       .bad =
           [](const std::vector<Tensor>& good) {
             return std::vector<std::vector<Tensor>>{with(good, 3, Tensor::zeros({2, 5, 6, 3})),
                                                     with(good, 0, Tensor::zeros({2, 5, 6, 3}, DType::s32))};
           }},
      {.op = "fused_linear",
       .cases = {{Attrs("fused_linear").set("activation", "relu"),
                  {In{.shape = {4, 8}}, In{.shape = {8, 5}}, In{.shape = {5}}, In{.shape = {4, 5}}}},
                 {Attrs("fused_linear").set("activation", "gelu_erf"),
                  {In{.shape = {2, 3, 8}}, In{.shape = {8, 5}}, In{.shape = {5}}}},
                 {Attrs("fused_linear").set("activation", "gelu_tanh"), {In{.shape = {3, 8}}, In{.shape = {8, 5}}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             return fused_ref(ref::linear(x[0], x[1], x.size() > 2 ? &x[2] : nullptr, false), x, a);
           },
       .differentiable = false,
       .bf16 = Tolerance{5e-2, 2e-2},
       .bad =
           [](const std::vector<Tensor>& good) {
             return std::vector<std::vector<Tensor>>{with(good, 3, Tensor::zeros({4, 6})),
                                                     with(good, 0, Tensor::zeros({4, 8}, DType::s32))};
           }},

      {.op = "quantize_linear",
       .cases = {{Attrs("quantize_linear").set("scale", 0.01f).set("zero_point", 0).set("dtype", "s8"),
                  {In{.shape = {3, 17}, .low = -2.f, .high = 2.f}}},
                 {Attrs("quantize_linear").set("scale", 0.004f).set("zero_point", 10).set("dtype", "u8"),
                  {In{.shape = {4, 9}, .low = -0.5f, .high = 1.5f}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             return ref::unary(x[0], [&](double v) {
               return quantize_ref(v, a.get_float("scale"), a.get_int("zero_point"), a.get_string("dtype"));
             });
           },
       .differentiable = false,
       .f32 = Tolerance{0, 0},
       .bf16 = Tolerance{1, 0},  // bf16 inputs round before quantizing: one step at most
       .out_dtype = attr_dtype},
      {.op = "dequantize_linear",
       .cases = {{Attrs("dequantize_linear").set("scale", 0.01f).set("zero_point", 0),
                  {In{.shape = {3, 17}, .low = -128.f, .high = 128.f, .dtype = DType::s8}}},
                 {Attrs("dequantize_linear").set("scale", 0.5f).set("zero_point", 7),
                  {In{.shape = {5, 4}, .low = 0.f, .high = 256.f, .dtype = DType::u8}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             return ref::unary(x[0], [&](double v) { return (v - a.get_int("zero_point")) * a.get_float("scale"); });
           },
       .differentiable = false,
       .f32 = Tolerance{1e-6, 1e-6},
       .bf16 = std::nullopt,
       .bad = [](const std::vector<Tensor>&) { return std::vector<std::vector<Tensor>>{{Tensor::zeros({2, 3})}}; },
       .out_dtype = [](const Attrs&, DType) { return DType::f32; }},
      // int8 conv/dense: u8 or s8 data, s8 weights with per-channel scales. Outputs are compared
      // within one quantization step (float accumulation can move a rounding tie).
      {.op = "qconv2d",
       .cases = {{quantized_epilogue(fused_conv_attrs({1, 1}, "same", 1, "relu"), "relu", 0.02, {0.01, 0.02, 0.015, 0.01},
                                     "u8", 0.05),
                  {In{.shape = {2, 5, 6, 3}, .low = 0.f, .high = 256.f, .dtype = DType::u8},
                   In{.shape = {3, 3, 3, 4}, .low = -127.f, .high = 128.f, .dtype = DType::s8}, In{.shape = {4}},
                   In{.shape = {2, 5, 6, 4}, .low = -128.f, .high = 128.f, .dtype = DType::s8}}},
                 {quantized_epilogue(fused_conv_attrs({2, 2}, "valid", 1, "none"), "none", 0.03, {0.01, 0.01, 0.02},
                                     "s8", 0.1),
                  {In{.shape = {1, 7, 8, 2}, .low = -128.f, .high = 128.f, .dtype = DType::s8},
                   In{.shape = {3, 3, 2, 3}, .low = -127.f, .high = 128.f, .dtype = DType::s8}, In{.shape = {3}}}},
                 {quantized_epilogue(fused_conv_attrs({1, 1}, "valid", 1, "none"), "none", 0.05, {0.01, 0.02},
                                     "f32", 1.0),
                  {In{.shape = {1, 4, 4, 2}, .low = 0.f, .high = 256.f, .dtype = DType::u8},
                   In{.shape = {2, 2, 2, 2}, .low = -127.f, .high = 128.f, .dtype = DType::s8}}}},
       .ref = [](const Refs& x, const Attrs& a) { return quantized_ref(x, a, true); },
       .differentiable = false,
       .f32 = Tolerance{1.001, 1e-4},
       .bf16 = std::nullopt,
       .bad =
           [](const std::vector<Tensor>& good) {
             return std::vector<std::vector<Tensor>>{with(good, 0, Tensor::zeros({2, 5, 6, 3})),
                                                     with(good, 1, Tensor::zeros({3, 3, 3, 4}))};
           },
       .out_dtype = [](const Attrs& a, DType) { return dtype_from_name(a.get_string("out_dtype")); }},
      {.op = "qlinear",
       .cases = {{quantized_epilogue(Attrs("qlinear"), "relu", 0.02, {0.01, 0.02, 0.01, 0.03, 0.01}, "u8", 0.05),
                  {In{.shape = {4, 8}, .low = 0.f, .high = 256.f, .dtype = DType::u8},
                   In{.shape = {8, 5}, .low = -127.f, .high = 128.f, .dtype = DType::s8}, In{.shape = {5}},
                   In{.shape = {4, 5}, .low = -128.f, .high = 128.f, .dtype = DType::s8}}},
                 {quantized_epilogue(Attrs("qlinear"), "none", 0.03, {0.01, 0.02, 0.01}, "f32", 1.0),
                  {In{.shape = {3, 6}, .low = -128.f, .high = 128.f, .dtype = DType::s8},
                   In{.shape = {6, 3}, .low = -127.f, .high = 128.f, .dtype = DType::s8}}}},
       .ref = [](const Refs& x, const Attrs& a) { return quantized_ref(x, a, false); },
       .differentiable = false,
       .f32 = Tolerance{1.001, 1e-4},
       .bf16 = std::nullopt,
       .bad =
           [](const std::vector<Tensor>& good) {
             return std::vector<std::vector<Tensor>>{with(good, 0, Tensor::zeros({4, 8})),
                                                     with(good, 1, Tensor::zeros({8, 5}))};
           },
       .out_dtype = [](const Attrs& a, DType) { return dtype_from_name(a.get_string("out_dtype")); }},

      pool_row("max_pool2d", true),
      pool_row("avg_pool2d", false),

      // Training-mode batch norm: the batch's own statistics. gamma and beta stay f32 under
      // bf16 data, as in mixed precision.
      {.op = "batch_norm",
       .cases = {{Attrs("batch_norm").set("epsilon", 1e-3f).set("relu", false),
                  {In{.shape = {8, 5}, .low = -2.f, .high = 3.f},
                   In{.shape = {5}, .low = 0.5f, .high = 1.5f, .bf16 = false}, In{.shape = {5}, .bf16 = false}}},
                 {Attrs("batch_norm").set("epsilon", 1e-2f).set("relu", true),
                  {In{.shape = {2, 3, 4, 6}, .low = -2.f, .high = 3.f},
                   In{.shape = {6}, .low = 0.5f, .high = 1.5f, .bf16 = false}, In{.shape = {6}, .bf16 = false}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             RefTensor y = ref::batch_norm_training(x[0], x[1], x[2], a.get_float("epsilon"));
             return a.get_int("relu") ? relu_ref(y) : y;
           },
       .f32 = Tolerance{1e-4, 1e-4},
       .bf16 = Tolerance{3e-2, 2e-2},
       .grad = Tolerance{2e-3, 2e-3},
       .bad =
           [](const std::vector<Tensor>& good) {
             return std::vector<std::vector<Tensor>>{with(good, 0, Tensor::zeros({5})),
                                                     with(good, 1, Tensor::ones({5}, DType::bf16)),
                                                     with(good, 0, Tensor::zeros({8, 5}, DType::s32))};
           }},

      // The moving statistics are inputs (a traced graph needs them) without a gradient.
      {.op = "batch_norm_inference",
       .cases = {{Attrs("batch_norm_inference").set("epsilon", 1e-3f).set("relu", false),
                  {In{.shape = {2, 3, 3, 4}}, In{.shape = {4}, .low = 0.5f, .high = 1.5f, .bf16 = false},
                   In{.shape = {4}, .bf16 = false}, In{.shape = {4}, .bf16 = false, .grad = false},
                   In{.shape = {4}, .low = 0.5f, .high = 2.f, .bf16 = false, .grad = false}}},
                 {Attrs("batch_norm_inference").set("epsilon", 1e-3f).set("relu", true),
                  {In{.shape = {6, 4}}, In{.shape = {4}, .low = 0.5f, .high = 1.5f, .bf16 = false},
                   In{.shape = {4}, .bf16 = false}, In{.shape = {4}, .bf16 = false, .grad = false},
                   In{.shape = {4}, .low = 0.5f, .high = 2.f, .bf16 = false, .grad = false}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             RefTensor y = ref::batch_norm_inference(x[0], x[1], x[2], x[3], x[4], a.get_float("epsilon"));
             return a.get_int("relu") ? relu_ref(y) : y;
           },
       .bf16 = Tolerance{2e-2, 2e-2},
       .bad =
           [](const std::vector<Tensor>& good) {
             return std::vector<std::vector<Tensor>>{with(good, 0, Tensor::zeros({4})),
                                                     with(good, 3, Tensor::zeros({3})),
                                                     with(good, 0, Tensor::zeros({2, 3, 3, 4}, DType::s32))};
           }},

      softmax_row("softmax", false),
      softmax_row("log_softmax", true),
      reduce_row("reduce_sum", ref::Reduce::sum),
      reduce_row("reduce_mean", ref::Reduce::mean),
      reduce_row("reduce_max", ref::Reduce::max),

      {.op = "argmax",
       .cases = {{Attrs("argmax").set("axis", -1), {In{.shape = {4, 6}}}},
                 {Attrs("argmax").set("axis", 0), {In{.shape = {4, 6}}}},
                 {Attrs("argmax").set("axis", 1), {In{.shape = {2, 3, 4}}}}},
       .ref = argmax_ref,
       .differentiable = false,
       .f32 = Tolerance{0, 0},
       .bf16 = Tolerance{0, 0},  // the reference sees the same rounded values, ties included
       // Any dtype is valid; a scalar has no axis.
       .bad = [](const std::vector<Tensor>&) { return std::vector<std::vector<Tensor>>{{Tensor::scalar(1.f)}}; },
       .out_dtype = [](const Attrs&, DType) { return DType::s32; }},

      // The reference is the exact value: bf16 rounds to within 2^-9 relative, integers
      // truncate toward zero and saturate (tensor/ops/cast.h).
      {.op = "cast",
       .cases = {{Attrs("cast").set("dtype", "bf16"), {In{.shape = {3, 5}, .low = -4.f, .high = 4.f}}},
                 {Attrs("cast").set("dtype", "f32"), {In{.shape = {3, 5}, .dtype = DType::bf16}}},
                 {Attrs("cast").set("dtype", "s32"),
                  {In{.shape = {3, 5}, .low = -100.f, .high = 100.f}},
                  {}},
                 {Attrs("cast").set("dtype", "u8"), {In{.shape = {3, 5}, .low = -50.f, .high = 300.f}}},
                 {Attrs("cast").set("dtype", "s8"), {In{.shape = {3, 5}, .low = -200.f, .high = 200.f}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             DType to = dtype_from_name(a.get_string("dtype"));
             return ref::unary(x[0], [to](double v) {
               if (is_floating(to)) return v;
               double r = std::trunc(v);
               if (to == DType::u8) return std::clamp(r, 0.0, 255.0);
               return to == DType::s8 ? std::clamp(r, -128.0, 127.0) : r;
             });
           },
       .f32 = Tolerance{1e-6, 4e-3},
       .bf16 = Tolerance{1e-6, 4e-3},
       .grad = Tolerance{4e-3, 4e-3},  // the gradient comes back through bf16 too
       // Any rank and dtype casts; an undefined tensor does not.
       .bad = [](const std::vector<Tensor>&) { return std::vector<std::vector<Tensor>>{{Tensor()}}; },
       .out_dtype = attr_dtype},

      // The fused loss: mean over rows of logsumexp(row) - row[label]; f32 logits only.
      {.op = "sparse_softmax_cross_entropy",
       .cases = {{Attrs("sparse_softmax_cross_entropy"),
                  {In{.shape = {4, 5}, .low = -3.f, .high = 3.f},
                   In{.shape = {4}, .low = 0.f, .high = 5.f, .dtype = DType::s32, .grad = false}}}},
       .ref =
           [](const Refs& x, const Attrs&) {
             const RefTensor& z = x[0];
             int64_t rows = z.shape[0], classes = z.shape[1];
             double total = 0;
             for (int64_t r = 0; r < rows; ++r) {
               double m = -INFINITY;
               for (int64_t c = 0; c < classes; ++c) m = std::max(m, z.data[r * classes + c]);
               double sum = 0;
               for (int64_t c = 0; c < classes; ++c) sum += std::exp(z.data[r * classes + c] - m);
               total += m + std::log(sum) - z.data[r * classes + static_cast<int64_t>(x[1].data[r])];
             }
             return RefTensor{{}, {total / static_cast<double>(rows)}};
           },
       .bf16 = std::nullopt},

      {.op = "one_hot",
       .cases = {{Attrs("one_hot").set("depth", 5).set("dtype", "f32"),
                  {In{.shape = {2, 3}, .low = 0.f, .high = 5.f, .dtype = DType::s32}}},
                 {Attrs("one_hot").set("depth", 4).set("dtype", "bf16"),
                  {In{.shape = {6}, .low = 0.f, .high = 4.f, .dtype = DType::s32}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             int64_t depth = a.get_int("depth");
             Shape shape = x[0].shape;
             shape.push_back(depth);
             RefTensor out{shape, std::vector<double>(numel(shape), 0.0)};
             for (int64_t i = 0; i < x[0].size(); ++i) out.data[i * depth + static_cast<int64_t>(x[0].data[i])] = 1.0;
             return out;
           },
       .differentiable = false,
       .f32 = Tolerance{0, 0},
       .bf16 = std::nullopt,
       .bad =
           [](const std::vector<Tensor>&) {
             return std::vector<std::vector<Tensor>>{{Tensor::zeros({2, 3})}};
           },
       .out_dtype = attr_dtype},

      // 0 copies the input's dimension (ONNX's convention, which trace writes for the batch).
      {.op = "reshape",
       .cases = {{Attrs("reshape").set("shape", Ints{6, -1}), {In{.shape = {2, 3, 4}}}},
                 {Attrs("reshape").set("shape", Ints{0, -1}), {In{.shape = {2, 3, 4}}}},
                 {Attrs("reshape").set("shape", Ints{5, 2, 2}), {In{.shape = {4, 5}, .transposed = true}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             Shape shape = a.get_ints("shape");
             int64_t known = 1;
             int infer = -1;
             for (size_t i = 0; i < shape.size(); ++i) {
               if (shape[i] == 0 && i < x[0].shape.size()) shape[i] = x[0].shape[i];
               if (shape[i] == -1)
                 infer = static_cast<int>(i);
               else
                 known *= shape[i];
             }
             if (infer >= 0) shape[infer] = x[0].size() / known;
             return RefTensor{shape, x[0].data};
           },
       .bad = [](const std::vector<Tensor>&) { return std::vector<std::vector<Tensor>>{{Tensor::zeros({7})}}; }},

      {.op = "permute",
       .cases = {{Attrs("permute").set("perm", Ints{2, 0, 1}), {In{.shape = {2, 3, 4}}}},
                 {Attrs("permute").set("perm", Ints{-1, 1, 0}), {In{.shape = {2, 3, 4}}}},
                 {Attrs("permute").set("perm", Ints{1, 0}), {In{.shape = {3, 5}, .transposed = true}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             std::vector<int> perm;
             for (int64_t p : a.get_ints("perm")) perm.push_back(axis_of(p, x[0].shape.size()));
             return ref::permute(x[0], perm);
           },
       .bad =
           [](const std::vector<Tensor>&) {
             return std::vector<std::vector<Tensor>>{{Tensor::zeros({2, 3})}};
           }},

      // Negative start and end count from the end; end is clamped to the axis.
      {.op = "slice",
       .cases = {{Attrs("slice").set("axis", 1).set("start", 1).set("end", 5).set("step", 2), {In{.shape = {4, 6}}}},
                 {Attrs("slice").set("axis", 0).set("start", -3).set("end", 100).set("step", 1), {In{.shape = {4, 6}}}},
                 {Attrs("slice").set("axis", -1).set("start", 0).set("end", -1).set("step", 2),
                  {In{.shape = {2, 3, 4}}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             int axis = axis_of(a.get_int("axis"), x[0].shape.size());
             int64_t n = x[0].shape[axis], start = a.get_int("start"), end = a.get_int("end");
             if (start < 0) start += n;
             if (end < 0) end += n;
             return ref::slice(x[0], axis, start, std::min(end, n), a.get_int("step"));
           },
       .bad = [](const std::vector<Tensor>&) { return std::vector<std::vector<Tensor>>{{Tensor::zeros({6})}}; }},

      // Only a strided input makes contiguous copy (and record) anything.
      {.op = "contiguous",
       .cases = {{Attrs("contiguous"), {In{.shape = {3, 4}, .transposed = true}}},
                 {Attrs("contiguous"), {In{.shape = {2, 3, 5}, .transposed = true}}}},
       .ref = first,
       .bad = [](const std::vector<Tensor>&) { return std::vector<std::vector<Tensor>>{{Tensor()}}; }},

      // What stop_gradient records: the value, no gradient. Any tensor is valid.
      {.op = "identity",
       .cases = {{Attrs("identity"), {In{.shape = {3, 4}}}, {}}},
       .ref = first,
       .differentiable = false,
       .bad = [](const std::vector<Tensor>&) { return std::vector<std::vector<Tensor>>{}; }},

      {.op = "broadcast_to",
       .cases = {{Attrs("broadcast_to").set("shape", Ints{2, 3, 4}), {In{.shape = {3, 1}}}},
                 {Attrs("broadcast_to").set("shape", Ints{3, 4}), {In{.shape = {4}}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             Shape shape = a.get_ints("shape");
             RefTensor zeros{shape, std::vector<double>(numel(shape), 0.0)};
             return ref::binary(x[0], zeros, [](double v, double) { return v; });
           },
       .bad =
           [](const std::vector<Tensor>&) {
             return std::vector<std::vector<Tensor>>{{Tensor::zeros({2, 2, 2})}};
           }},

      {.op = "concat",
       .cases = {{Attrs("concat").set("axis", 1), {In{.shape = {2, 3}}, In{.shape = {2, 5}}}},
                 {Attrs("concat").set("axis", 0), {In{.shape = {1, 4}}, In{.shape = {2, 4}}, In{.shape = {3, 4}}}},
                 {Attrs("concat").set("axis", -1),
                  {In{.shape = {2, 3, 4}}, In{.shape = {2, 3, 2}, .transposed = true}}}},
       .ref = [](const Refs& x,
                 const Attrs& a) { return ref::concat(x, axis_of(a.get_int("axis"), x[0].shape.size())); },
       .bad =
           [](const std::vector<Tensor>&) {
             return std::vector<std::vector<Tensor>>{{Tensor::zeros({2, 3}), Tensor::zeros({2, 3, 1})},
                                                     {Tensor::zeros({2, 3}), Tensor::zeros({2, 3}, DType::s32)}};
           }},

      // Transposed convolution and resize (tests/conv_transpose_test and resize_test check
      // them against Keras's own numbers).
      {.op = "conv_transpose2d",
       .cases = {{conv_transpose_attrs({2, 2}, "same", {-1, -1}, {1, 1}),
                  {In{.shape = {2, 4, 5, 3}}, In{.shape = {3, 3, 2, 3}}, In{.shape = {2}}}},
                 {conv_transpose_attrs({3, 2}, "valid", {2, 1}, {1, 1}),
                  {In{.shape = {1, 3, 4, 2}}, In{.shape = {2, 3, 3, 2}}}},
                 {conv_transpose_attrs({1, 1}, "same", {-1, -1}, {2, 2}),
                  {In{.shape = {1, 5, 5, 2}}, In{.shape = {3, 3, 2, 2}}, In{.shape = {2}}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             const Ints &s = a.get_ints("strides"), &op = a.get_ints("output_padding"), &d = a.get_ints("dilation");
             ref::ConvTransposeParams p{{s[0], s[1]}, a.get_string("padding") == "same", {op[0], op[1]}, {d[0], d[1]}};
             return ref::conv_transpose2d(x[0], x[1], x.size() > 2 ? &x[2] : nullptr, p);
           },
       .bf16 = Tolerance{6e-2, 3e-2},
       .bad =
           [](const std::vector<Tensor>& good) {
             return std::vector<std::vector<Tensor>>{with(good, 0, Tensor::zeros({4, 5, 3})),
                                                     with(good, 0, Tensor::zeros({2, 4, 5, 3}, DType::s32))};
           }},
      {.op = "resize2d",
       .cases = {{Attrs("resize2d").set("size", Ints{7, 5}).set("interpolation", "bilinear"), {In{.shape = {2, 3, 4, 3}}}},
                 {Attrs("resize2d").set("size", Ints{2, 3}).set("interpolation", "bilinear"), {In{.shape = {1, 5, 7, 2}}}},
                 {Attrs("resize2d").set("size", Ints{6, 8}).set("interpolation", "nearest"), {In{.shape = {1, 3, 4, 2}}}},
                 {Attrs("resize2d").set("size", Ints{2, 5}).set("interpolation", "nearest"), {In{.shape = {2, 5, 3, 1}}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             const Ints& size = a.get_ints("size");
             return ref::resize2d(x[0], size[0], size[1], a.get_string("interpolation") == "nearest");
           },
       .bad =
           [](const std::vector<Tensor>&) {
             return std::vector<std::vector<Tensor>>{{Tensor::zeros({3, 4, 3})}, {Tensor::zeros({2, 3, 4, 3}, DType::s32)}};
           }},
      // numpy.pad's modes on any rank; negative amounts crop. Any dtype pads (int8 data too), so
      // only a wrong rank is bad input.
      {.op = "pad",
       .cases = {{to_attrs(PadAttrs{{0, 1, 2, 0}, {0, 2, 1, 0}, PadMode::constant, 0}), {In{.shape = {2, 3, 4, 3}}}},
                 {to_attrs(PadAttrs{{1, -1}, {2, 1}, PadMode::constant, -0.5}), {In{.shape = {3, 4}, .transposed = true}}},
                 {to_attrs(PadAttrs{{0, 4, 1}, {0, 3, 2}, PadMode::reflect, 0}), {In{.shape = {2, 3, 4}}}},
                 {to_attrs(PadAttrs{{2, 0, 3}, {1, 0, -1}, PadMode::edge, 0}), {In{.shape = {2, 3, 4}}}}},
       .ref = [](const Refs& x, const Attrs& a) { return ref::pad(x[0], ops::parse_attrs<PadAttrs>(a)); },
       .bad = [](const std::vector<Tensor>&) { return std::vector<std::vector<Tensor>>{{Tensor::zeros({3, 4, 3})}}; }},

      // Issue 23: the select torch's masked_fill and torch.where export to (a 1/0 condition, no
      // gradient to it), the boolean ops on 1/0 values (no gradient), and erf.
      {.op = "where",
       .cases = {{Attrs("where"), {In{.shape = {3, 4}, .low = 0.f, .high = 2.f, .integral = true, .grad = false},
                                   In{.shape = {3, 4}}, In{.shape = {3, 4}, .transposed = true}}},
                 {Attrs("where"), {In{.shape = {2, 1, 4}, .low = 0.f, .high = 2.f, .integral = true, .grad = false},
                                   In{.shape = {2, 3, 4}}, In{.shape = {4}}}}},
       .ref =
           [](const Refs& x, const Attrs&) {
             RefTensor a = ref::binary(x[0], x[1], [](double c, double v) { return c != 0 ? v : 0.0; });
             RefTensor b = ref::binary(x[0], x[2], [](double c, double v) { return c != 0 ? 0.0 : v; });
             return ref::binary(a, b, [](double p, double q) { return p + q; });
           }},
      {.op = "logical_not",
       .cases = {{Attrs("logical_not"), {In{.shape = {3, 4}, .low = -2.f, .high = 3.f, .integral = true}}},
                 {Attrs("logical_not"), {In{.shape = {3, 4}, .low = -2.f, .high = 3.f, .integral = true, .transposed = true}}}},
       .ref = [](const Refs& x, const Attrs&) { return ref::unary(x[0], [](double v) { return v != 0 ? 0.0 : 1.0; }); },
       .differentiable = false},
      comparison_row("logical_and", [](double a, double b) { return a != 0 && b != 0; }),
      comparison_row("logical_or", [](double a, double b) { return a != 0 || b != 0; }),
      {.op = "erf",
       .cases = {{Attrs("erf"), {In{.shape = {3, 17}, .low = -3.f, .high = 3.f}}},
                 {Attrs("erf"), {In{.shape = {4, 5}, .low = -2.f, .high = 2.f, .transposed = true}}}},
       .ref = [](const Refs& x, const Attrs&) { return ref::unary(x[0], [](double v) { return std::erf(v); }); }},

      // Embedding lookup: rows of the table at s32 indices of any shape, on any axis; the
      // table's gradient is a scatter-add (indices repeat in these shapes, so rows add up).
      {.op = "gather",
       .cases = {{Attrs("gather").set("axis", 0),
                  {In{.shape = {7, 5}}, In{.shape = {3, 4}, .low = 0.f, .high = 7.f, .dtype = DType::s32, .grad = false}}},
                 {Attrs("gather").set("axis", 1),
                  {In{.shape = {2, 6, 3}}, In{.shape = {5}, .low = 0.f, .high = 6.f, .dtype = DType::s32, .grad = false}}},
                 {Attrs("gather").set("axis", -1),
                  {In{.shape = {4, 5}, .transposed = true},
                   In{.shape = {2, 2}, .low = 0.f, .high = 4.f, .dtype = DType::s32, .grad = false}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             const RefTensor &t = x[0], &ids = x[1];
             const int axis = axis_of(a.get_int("axis"), t.shape.size());
             int64_t outer = 1, inner = 1;
             for (int i = 0; i < axis; ++i) outer *= t.shape[i];
             for (size_t i = axis + 1; i < t.shape.size(); ++i) inner *= t.shape[i];
             Shape shape(t.shape.begin(), t.shape.begin() + axis);
             shape.insert(shape.end(), ids.shape.begin(), ids.shape.end());
             shape.insert(shape.end(), t.shape.begin() + axis + 1, t.shape.end());
             RefTensor out{shape, {}};
             for (int64_t o = 0; o < outer; ++o) {
               for (int64_t j = 0; j < ids.size(); ++j) {
                 const int64_t row = static_cast<int64_t>(ids.data[j]);
                 for (int64_t k = 0; k < inner; ++k) {
                   out.data.push_back(t.data[(o * t.shape[axis] + row) * inner + k]);
                 }
               }
             }
             return out;
           },
       .f32 = Tolerance{0, 0},
       .bf16 = Tolerance{0, 0},
       .bad =
           [](const std::vector<Tensor>& good) {
             // (Indices out of range are value errors: tests/gather_test.cc.)
             return std::vector<std::vector<Tensor>>{with(good, 1, Tensor::zeros({3, 4})),  // float indices
                                                     with(good, 0, Tensor::scalar(1.f))};   // a scalar table
           }},

      // Recurrent layers (tensor/ops/rnn.h) against Keras's step loop; the reference gives the
      // sequence (tests/rnn_test.cc checks the final states, masks and each gradient).
      rnn_row("lstm", 4),
      rnn_row("gru", 3),
      rnn_row("simple_rnn", 1),

      // Over the last axis, as Keras's LayerNormalization(axis=-1); gamma and beta stay f32.
      {.op = "layer_norm",
       .cases = {{Attrs("layer_norm").set("epsilon", 1e-3f),
                  {In{.shape = {6, 8}, .low = -2.f, .high = 3.f},
                   In{.shape = {8}, .low = 0.5f, .high = 1.5f, .bf16 = false}, In{.shape = {8}, .bf16 = false}}},
                 {Attrs("layer_norm").set("epsilon", 1e-5f),
                  {In{.shape = {2, 3, 5}, .low = -1.f, .high = 1.f},
                   In{.shape = {5}, .low = -1.5f, .high = 1.5f, .bf16 = false}, In{.shape = {5}, .bf16 = false}}},
                 {Attrs("layer_norm").set("epsilon", 1e-3f),
                  {In{.shape = {4, 6}, .transposed = true}, In{.shape = {6}, .bf16 = false},
                   In{.shape = {6}, .bf16 = false}}}},
       .ref =
           [](const Refs& x, const Attrs& a) {
             const RefTensor& v = x[0];
             const double eps = a.get_float("epsilon");
             const int64_t c = v.shape.back(), rows = v.size() / c;
             RefTensor out{v.shape, std::vector<double>(v.size())};
             for (int64_t r = 0; r < rows; ++r) {
               double mean = 0, var = 0;
               for (int64_t k = 0; k < c; ++k) mean += v.data[r * c + k] / c;
               for (int64_t k = 0; k < c; ++k) var += (v.data[r * c + k] - mean) * (v.data[r * c + k] - mean) / c;
               for (int64_t k = 0; k < c; ++k) {
                 out.data[r * c + k] = (v.data[r * c + k] - mean) / std::sqrt(var + eps) * x[1].data[k] + x[2].data[k];
               }
             }
             return out;
           },
       .f32 = Tolerance{1e-4, 1e-4},
       .bf16 = Tolerance{3e-2, 2e-2},
       .grad = Tolerance{2e-3, 2e-3},
       .bad =
           [](const std::vector<Tensor>& good) {
             return std::vector<std::vector<Tensor>>{with(good, 1, Tensor::ones({3})),
                                                     with(good, 2, Tensor::ones({8}, DType::bf16)),
                                                     with(good, 0, Tensor::zeros({6, 8}, DType::s32))};
           }},

      // Eltwise kinds (alpha, beta as oneDNN defines them for each).
      eltwise_row("relu", [](double x, double alpha, double) { return x > 0 ? x : alpha * x; }, -2, 2,
                  {{0.f, 0.f}, {0.1f, 0.f}}),
      eltwise_row(
          "gelu_tanh", [](double x, double, double) { return ref::gelu_tanh(x); }, -3, 3),
      eltwise_row(
          "gelu_erf", [](double x, double, double) { return ref::gelu_erf(x); }, -3, 3),
      eltwise_row(
          "sigmoid", [](double x, double, double) { return 1 / (1 + std::exp(-x)); }, -4, 4),
      eltwise_row(
          "tanh", [](double x, double, double) { return std::tanh(x); }, -3, 3),
      eltwise_row(
          "exp", [](double x, double, double) { return std::exp(x); }, -2, 2),
      eltwise_row(
          "log", [](double x, double, double) { return std::log(x); }, 0.2f, 3),
      eltwise_row(
          "sqrt", [](double x, double, double) { return std::sqrt(x); }, 0.2f, 3),
      eltwise_row(
          "square", [](double x, double, double) { return x * x; }, -2, 2),
      eltwise_row(
          "abs", [](double x, double, double) { return std::fabs(x); }, -2, 2),
      eltwise_row("elu", [](double x, double alpha, double) { return x > 0 ? x : alpha * (std::exp(x) - 1); }, -2, 2,
                  {{1.f, 0.f}, {0.5f, 0.f}}),
      eltwise_row(
          "softplus", [](double x, double, double) { return std::log1p(std::exp(x)); }, -4, 4),
      eltwise_row("swish", [](double x, double alpha, double) { return x / (1 + std::exp(-alpha * x)); }, -3, 3,
                  {{1.f, 0.f}, {2.f, 0.f}}),
      eltwise_row("affine", [](double x, double alpha, double beta) { return alpha * x + beta; }, -2, 2,
                  {{2.5f, -1.f}, {-1.f, 0.f}}),
      eltwise_row("clip", [](double x, double low, double high) { return std::min(std::max(x, low), high); }, -2, 2,
                  {{-0.5f, 0.7f}, {0.f, 6.f}}),
      eltwise_row("pow", [](double x, double alpha, double beta) { return alpha * std::pow(x, beta); }, 0.2f, 3,
                  {{1.f, 1.5f}, {2.f, -1.f}}),
      eltwise_row(
          "relu6", [](double x, double, double) { return std::min(std::max(x, 0.0), 6.0); }, -2, 8),
      eltwise_row(
          "hard_sigmoid", [](double x, double, double) { return std::min(std::max(x + 3, 0.0), 6.0) / 6; }, -5, 5),
      eltwise_row(
          "hard_swish", [](double x, double, double) { return x * std::min(std::max(x + 3, 0.0), 6.0) / 6; }, -5, 5),
      eltwise_row(
          "mish", [](double x, double, double) { return x * std::tanh(std::log1p(std::exp(x))); }, -4, 4),
  };
  return *table;
}

// ---------------------------------------------------------------------------------------
// The checks.

// The inputs of one case, in f32, or in bf16 where the input allows. Values are drawn in f32
// and then converted, so the bf16 pass sees the f32 pass's values rounded; a transposed input
// is transposed last, so it stays a strided view in both passes.
std::vector<Tensor> make_inputs(const Case& c, size_t case_index, DType dtype) {
  std::vector<Tensor> out;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const In& in = c.inputs[i];
    Shape stored = in.shape;
    if (in.transposed) std::swap(stored[stored.size() - 2], stored.back());
    Tensor t = testing::rand_tensor(stored, 1 + 1000 * case_index + 31 * i, in.low, in.high);
    if (in.integral || !is_floating(in.dtype)) {
      std::vector<float> v = t.to_vector();
      for (float& x : v) x = std::floor(x);  // stays in [low, high), unlike rounding
      t = Tensor::from_vector(v, stored);
    }
    DType want = in.dtype == DType::f32 && in.bf16 ? dtype : in.dtype;
    if (want != DType::f32) t = cast(t, want);
    if (in.transposed) t = transpose(t);
    out.push_back(t);
  }
  return out;
}

Refs refs_of(const std::vector<Tensor>& inputs) {
  Refs r;
  for (const Tensor& t : inputs) r.push_back(ref::from(t));
  return r;
}

// Every output (the recurrent ops give the sequence and the final states).
std::vector<Tensor> run_all(const Case& c, const std::vector<Tensor>& inputs) {
  std::vector<Tensor> out = ops::run_op(c.attrs, inputs);
  if (out.empty()) throw std::logic_error(c.attrs.op() + " returned no output");
  return out;
}

// The first output, which the row's reference gives.
Tensor run(const Case& c, const std::vector<Tensor>& inputs) { return run_all(c, inputs)[0]; }

std::string describe(const Case& c, const std::vector<Tensor>& inputs) {
  std::string s = c.attrs.op() + "(";
  for (size_t i = 0; i < inputs.size(); ++i)
    s += (i ? ", " : "") + (inputs[i].defined() ? inputs[i].describe() : "undefined");
  return s + ") {" + c.attrs.to_string() + "}";
}

// Runs one check of one case, or, for a known defect, expects it to fail (an exception
// counts as a failure) and fails once it passes.
void check_case(const Case& c, const std::string& check, const std::function<void()>& body) {
  auto it = c.known_defects.find(check);
  if (it == c.known_defects.end()) return body();
  ::testing::TestPartResultArray failures;
  {
    ::testing::ScopedFakeTestPartResultReporter intercept(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    try {
      body();
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }
  EXPECT_GT(failures.size(), 0) << c.attrs.op() << " " << check << " passes now: remove the known defect \""
                                << it->second << "\"";
  if (failures.size() > 0) {
    std::cout << "[  KNOWN   ] " << c.attrs.op() << " {" << c.attrs.to_string() << "} " << check << ": " << it->second
              << "\n             first failure: " << failures.GetTestPartResult(0).message() << "\n";
  }
}

// Like testing::expect_forward_matches, but the row decides which inputs turn bf16 and what
// dtype comes out (argmax, cast and one_hot change it).
void check_forward(const Row& row, size_t k, DType dtype, Tolerance tol) {
  const Case& c = row.cases[k];
  std::vector<Tensor> inputs = make_inputs(c, k, dtype);
  SCOPED_TRACE(describe(c, inputs));
  Tensor got = run(c, inputs);
  RefTensor want = row.ref(refs_of(inputs), c.attrs);
  ASSERT_EQ(got.shape(), want.shape) << "output " << got.describe() << " vs reference " << shape_str(want.shape);
  EXPECT_EQ(got.dtype(), row.out_dtype ? row.out_dtype(c.attrs, dtype) : dtype);
  std::vector<float> v = got.to_vector();
  int bad = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    double e = want.data[i];
    if (!(std::fabs(v[i] - e) <= tol.atol + tol.rtol * std::fabs(e)) && ++bad <= 5) {
      ADD_FAILURE() << "element " << i << ": got " << v[i] << ", reference " << e;
    }
  }
  EXPECT_EQ(bad, 0) << bad << " of " << v.size() << " elements differ";
}

// Central differences of the double reference against the tape's gradients, in f32. Inputs
// marked grad = false are held constant (captured, not passed), as the op gives them none.
void check_gradients(const Row& row, size_t k) {
  const Case& c = row.cases[k];
  if (row.out_dtype && !is_floating(row.out_dtype(c.attrs, DType::f32))) return;  // integer results
  std::vector<Tensor> all = make_inputs(c, k, DType::f32);
  SCOPED_TRACE(describe(c, all));
  Refs all_refs = refs_of(all);
  std::vector<size_t> varied;
  for (size_t i = 0; i < all.size(); ++i) {
    if (c.inputs[i].grad && is_floating(all[i].dtype())) varied.push_back(i);
  }
  auto splice = [&](auto full, const auto& some) {
    for (size_t j = 0; j < varied.size(); ++j) full[varied[j]] = some[j];
    return full;
  };
  std::vector<Tensor> xs;
  for (size_t i : varied) xs.push_back(all[i]);
  testing::expect_gradients_match([&](const std::vector<Tensor>& x) { return run(c, splice(all, x)); },
                                  [&](const Refs& x) { return row.ref(splice(all_refs, x), c.attrs); }, xs, row.grad);
}

// A non-differentiable op passes no gradient to its floating inputs.
void check_no_gradient(const Row& row, size_t k) {
  const Case& c = row.cases[k];
  std::vector<Tensor> inputs = make_inputs(c, k, DType::f32), watched;
  SCOPED_TRACE(describe(c, inputs));
  GradientTape tape;
  for (const Tensor& t : inputs) {
    if (is_floating(t.dtype())) tape.watch(t), watched.push_back(t);
  }
  Tensor y = run(c, inputs);
  if (!is_floating(y.dtype())) return;  // nothing to differentiate
  std::vector<Tensor> grads = tape.gradient(y, watched);
  for (size_t i = 0; i < grads.size(); ++i) EXPECT_FALSE(grads[i].defined()) << "input " << i << " gets a gradient";
}

// trace() of the call gives one node (after dead-code elimination drops what the op computed
// on the side, such as stop_gradient views) that replays the eager result bit for bit. The
// first input is the graph input; the others become named constants, as weights do, since
// trace() wants its inputs to share a batch dimension.
void check_trace(const Row& row, size_t k) {
  const Case& c = row.cases[k];
  std::vector<Tensor> inputs = make_inputs(c, k, DType::f32);
  SCOPED_TRACE(describe(c, inputs));
  std::vector<Tensor> eager = run_all(c, inputs);
  std::vector<std::pair<std::string, Tensor>> constants;
  for (size_t i = 1; i < inputs.size(); ++i) constants.emplace_back("arg" + std::to_string(i), inputs[i]);
  graph::Graph g =
      graph::trace([&](const std::vector<Tensor>& x) { return ops::run_op(c.attrs, with(inputs, 0, x[0])); },
                   {inputs[0]}, constants);
  ASSERT_EQ(g.nodes.size(), 1u) << g.to_string();
  EXPECT_EQ(g.nodes[0].call.op(), row.op) << g.to_string();
  EXPECT_EQ(g.nodes[0].inputs.size(), inputs.size()) << g.to_string();
  std::vector<Tensor> replay = g.run(std::vector<Tensor>{inputs[0]});
  ASSERT_EQ(replay.size(), eager.size());
  for (size_t o = 0; o < eager.size(); ++o) EXPECT_TRUE(bitwise_equal(replay[o], eager[o])) << g.to_string();
}

std::vector<ops::ValueType> types_of(const std::vector<Tensor>& inputs) {
  std::vector<ops::ValueType> types;
  for (const Tensor& t : inputs) types.push_back({t.dtype(), t.shape()});
  return types;
}

// Shape inference (OpDef::infer, what Graph::validate runs) gives the eager output's dtype
// and shape.
void check_infer(const Row& row, size_t k) {
  for (DType dtype : {DType::f32, DType::bf16}) {
    if (dtype == DType::bf16 && !row.bf16) continue;
    const Case& c = row.cases[k];
    std::vector<Tensor> inputs = make_inputs(c, k, dtype);
    SCOPED_TRACE(describe(c, inputs));
    std::vector<Tensor> eager = run_all(c, inputs);
    std::vector<ops::ValueType> inferred = ops::infer_op(c.attrs, types_of(inputs));
    ASSERT_EQ(inferred.size(), eager.size());
    for (size_t o = 0; o < eager.size(); ++o) EXPECT_EQ(ops::describe(inferred[o]), eager[o].describe());
  }
}

// The exception must be one of the two a caller can expect, and say what was wrong.
void expect_rejected(const Case& c, const std::vector<Tensor>& inputs, const std::string& what) {
  SCOPED_TRACE(what + ": " + describe(c, inputs));
  std::string message;
  try {
    run(c, inputs);
    ADD_FAILURE() << c.attrs.op() << " accepted " << what;
    return;
  } catch (const std::invalid_argument& e) {
    message = e.what();
  } catch (const std::out_of_range& e) {
    message = e.what();
  }
  bool named = message.find(c.attrs.op()) != std::string::npos;
  for (const Tensor& t : inputs) named = named || (t.defined() && message.find(t.describe()) != std::string::npos);
  EXPECT_TRUE(named) << "the message names neither the op nor an input's shape: " << message;
  // Shape inference rejects what the eager op rejects (a graph value is never undefined).
  if (std::any_of(inputs.begin(), inputs.end(), [](const Tensor& t) { return !t.defined(); })) return;
  try {
    ops::infer_op(c.attrs, types_of(inputs));
    ADD_FAILURE() << c.attrs.op() << ": shape inference accepted " << what << " that the eager op rejects: " << message;
  } catch (const std::invalid_argument&) {
  } catch (const std::out_of_range&) {
  }
}

class OpRow : public ::testing::TestWithParam<size_t> {
 protected:
  const Row& row() const { return rows()[GetParam()]; }
  // Runs check(row, case) for every case of the row.
  void each_case(const std::string& check, const std::function<void(const Row&, size_t)>& body) {
    for (size_t k = 0; k < row().cases.size(); ++k) check_case(row().cases[k], check, [&] { body(row(), k); });
  }
};

TEST_P(OpRow, ForwardF32) {
  each_case("f32", [](const Row& r, size_t k) { check_forward(r, k, DType::f32, r.f32); });
}

TEST_P(OpRow, ForwardBf16) {
  if (!row().bf16) GTEST_SKIP() << row().op << " takes no floating input";
  each_case("bf16", [](const Row& r, size_t k) { check_forward(r, k, DType::bf16, *r.bf16); });
}

TEST_P(OpRow, Gradients) { each_case("gradients", row().differentiable ? check_gradients : check_no_gradient); }

TEST_P(OpRow, TraceIsOneNodeThatReplaysBitwise) { each_case("trace", check_trace); }

TEST_P(OpRow, InferGivesTheEagerOutputType) { each_case("infer", check_infer); }

TEST_P(OpRow, BadInputThrowsNamingOpOrShapes) {
  const Case& c = row().cases[0];
  std::vector<Tensor> good = make_inputs(c, 0, DType::f32);
  const ops::OpDef& def = ops::op_def(row().op);
  if (def.min_inputs > 0) {
    expect_rejected(c, std::vector<Tensor>(good.begin(), good.begin() + def.min_inputs - 1), "too few inputs");
  }
  if (def.max_inputs >= 0) {
    std::vector<Tensor> more = good;
    while (static_cast<int>(more.size()) <= def.max_inputs) more.push_back(good.back());
    expect_rejected(c, more, "too many inputs");
  }
  std::vector<std::vector<Tensor>> bad;
  if (row().bad) {
    bad = row().bad(good);
  } else {
    for (size_t i = 0; i < good.size(); ++i) {
      if (is_floating(good[i].dtype())) {
        bad.push_back(with(good, i, Tensor::zeros(good[i].shape(), DType::s32)));
        break;
      }
    }
  }
  for (const std::vector<Tensor>& inputs : bad) expect_rejected(c, inputs, "a wrong-rank or wrong-dtype input");
}

INSTANTIATE_TEST_SUITE_P(Ops, OpRow, ::testing::Range(size_t{0}, rows().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) { return rows()[info.param].op; });

TEST(OpTable, EveryRegisteredOpHasARow) {
  std::set<std::string> names;
  for (const Row& row : rows()) {
    EXPECT_TRUE(names.insert(row.op).second) << "two rows for '" << row.op << "'";
    const ops::OpDef* def = nullptr;
    try {
      def = &ops::op_def(row.op);
    } catch (const std::invalid_argument& e) {
      ADD_FAILURE() << "row '" << row.op << "' names an op that is not registered: " << e.what();
      continue;
    }
    EXPECT_EQ(row.differentiable, def->differentiable) << row.op;
    EXPECT_FALSE(row.cases.empty()) << row.op;
    for (const Case& c : row.cases) {
      EXPECT_EQ(c.attrs.op(), row.op);
      int n = static_cast<int>(c.inputs.size());
      EXPECT_TRUE(n >= def->min_inputs && (def->max_inputs < 0 || n <= def->max_inputs))
          << row.op << ": " << n << " inputs";
    }
  }
  for (const ops::OpDef& def : ops::registered_ops()) {
    EXPECT_TRUE(names.count(def.name)) << "registered op '" << def.name << "' has no row in tests/op_table_test.cc";
  }
}

}  // namespace
}  // namespace kiln
