#include "tensor/ops/rnn.h"

#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "tensor/ops/cast.h"
#include "tensor/ops/common.h"
#include "tensor/ops/recorder.h"
#include "tensor/ops/rnn_primitive.h"

namespace kiln {
namespace {

using rnn_detail::RnnCell;
using rnn_detail::RnnPass;
using rnn_detail::RnnWeights;

struct RnnInputs {
  Tensor x, kernel, recurrent_kernel, bias, h0, c0, mask;
};

std::string shape_text(const Shape& s) {
  std::string out = "[";
  for (size_t k = 0; k < s.size(); ++k) out += (k ? ", " : "") + std::to_string(s[k]);
  return out + "]";
}

Shape bias_shape(RnnCell cell, int64_t u) {
  switch (cell) {
    case RnnCell::lstm: return {4 * u};
    case RnnCell::gru: return {2, 3 * u};
    case RnnCell::simple_rnn: return {u};
  }
  return {};
}

void check_float_input(const Tensor& t, const char* op, const char* what) {
  detail::check_defined(t, op, what);
  if (t.dtype() != DType::f32 && t.dtype() != DType::bf16) {
    throw std::invalid_argument(std::string(op) + ": " + what + " must be f32 or bf16, got " + t.describe());
  }
}

void check_shape(const Tensor& t, const Shape& want, const char* op, const char* what, const RnnInputs& in) {
  if (t.shape() != want) {
    throw std::invalid_argument(std::string(op) + ": " + what + " must be " + shape_text(want) + " for input " +
                                in.x.describe() + " and kernel " + in.kernel.describe() + ", got " + t.describe());
  }
}

// Checks shapes and dtypes; returns U.
int64_t check_inputs(RnnCell cell, const RnnInputs& in) {
  const char* op = rnn_detail::cell_name(cell);
  check_float_input(in.x, op, "input");
  if (in.x.ndim() != 3) throw std::invalid_argument(std::string(op) + ": input must be [batch, time, features], got " + in.x.describe());
  check_float_input(in.kernel, op, "kernel");
  const int gates = rnn_detail::gate_count(cell);
  const int64_t b = in.x.shape()[0], t = in.x.shape()[1], i = in.x.shape()[2];
  if (in.kernel.ndim() != 2 || in.kernel.shape()[0] != i || in.kernel.shape()[1] % gates != 0 ||
      in.kernel.shape()[1] == 0) {
    throw std::invalid_argument(std::string(op) + ": kernel must be [" + std::to_string(i) + ", " +
                                std::to_string(gates) + " * units] with units >= 1 for input " + in.x.describe() +
                                ", got " + in.kernel.describe());
  }
  const int64_t u = in.kernel.shape()[1] / gates;
  check_float_input(in.recurrent_kernel, op, "recurrent_kernel");
  check_shape(in.recurrent_kernel, {u, gates * u}, op, "recurrent_kernel", in);
  check_float_input(in.bias, op, "bias");
  check_shape(in.bias, bias_shape(cell, u), op, "bias", in);
  if (!in.h0.defined() && !in.c0.defined()) {
    // zeros
  } else if (rnn_detail::has_cell_state(cell) && (!in.h0.defined() || !in.c0.defined())) {
    throw std::invalid_argument(std::string(op) + ": give both initial states (h and c) or neither");
  } else {
    check_float_input(in.h0, op, "initial h");
    check_shape(in.h0, {b, u}, op, "initial h", in);
  }
  if (rnn_detail::has_cell_state(cell) && in.c0.defined()) {
    check_float_input(in.c0, op, "initial c");
    check_shape(in.c0, {b, u}, op, "initial c", in);
  }
  if (in.mask.defined()) {
    if (in.mask.dtype() != DType::f32 || in.mask.shape() != Shape{b, t}) {
      throw std::invalid_argument(std::string(op) + ": mask must be f32 " + shape_text({b, t}) + " (1 a step, 0 padding) for input " +
                                  in.x.describe() + ", got " + in.mask.describe());
    }
  }
  return u;
}

// A contiguous f32 tensor's bytes under another shape (not recorded: the op's own buffers).
Tensor view_as(const Tensor& t, const Shape& shape) { return t.alias(shape, contiguous_strides(shape), t.offset()); }

Tensor as_dtype(const Tensor& t, DType dtype) { return detail::dense(t.dtype() == dtype ? t : cast(t, dtype)); }
Tensor as_f32(const Tensor& t) { return as_dtype(t, DType::f32); }

// Element rows of a contiguous tensor as bytes (f32 or bf16 alike).
struct Rows {
  char* base;
  size_t elem;
  explicit Rows(const Tensor& t) : base(static_cast<char*>(t.raw_data())), elem(dtype_size(t.dtype())) {}
  char* at(int64_t element) const { return base + element * static_cast<int64_t>(elem); }
  void copy(const Rows& from, int64_t from_element, int64_t to_element, int64_t count) const {
    std::memcpy(at(to_element), from.at(from_element), count * elem);
  }
};

// [B, T, C] with the time axis reversed.
Tensor reverse_time(const Tensor& x) {
  const int64_t b = x.shape()[0], t = x.shape()[1], c = x.numel() / std::max<int64_t>(1, b * t);
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  const Rows src(x), dst(out);
  for (int64_t r = 0; r < b; ++r)
    for (int64_t s = 0; s < t; ++s) dst.copy(src, (r * t + s) * c, (r * t + (t - 1 - s)) * c, c);
  return out;
}

// Keras's bias in oneDNN's [bias gates, U]; GRU's input and recurrent biases of z and r add up.
Tensor keras_bias_grad(RnnCell cell, const Tensor& grad, int64_t u) {
  if (cell != RnnCell::gru) return view_as(grad, bias_shape(cell, u));
  Tensor out = Tensor::empty({2, 3 * u});
  const float* g = grad.data<float>();
  float* o = out.data<float>();
  std::copy_n(g, 3 * u, o);               // input z, r, h
  std::copy_n(g, 2 * u, o + 3 * u);       // recurrent z, r share theirs
  std::copy_n(g + 3 * u, u, o + 5 * u);   // recurrent h: linear-before-reset's own
  return out;
}

// Rows whose masks are the same run [start, end) of steps in reading order.
struct Group {
  int64_t start = 0, end = 0;
  std::vector<int64_t> rows;
  bool whole = false;  // every row in order, every step: no gathering
  Tensor x, h0, c0;    // this group's f32 inputs
  RnnPass pass;
};

std::vector<Group> group_rows(const Tensor& mask, int64_t b, int64_t t, const char* op) {
  if (b == 0) return {};
  if (!mask.defined()) {
    Group all;
    all.start = 0, all.end = t, all.whole = t > 0;
    for (int64_t r = 0; r < b; ++r) all.rows.push_back(r);
    return {all};
  }
  std::map<std::pair<int64_t, int64_t>, Group> groups;
  const float* m = mask.data<float>();
  for (int64_t r = 0; r < b; ++r) {
    int64_t start = -1, end = -1;
    for (int64_t s = 0; s < t; ++s) {
      const float v = m[r * t + s];
      if (v != 0.f && v != 1.f) {
        throw std::invalid_argument(std::string(op) + ": mask values must be 0 or 1, row " + std::to_string(r) +
                                    " step " + std::to_string(s) + " holds " + std::to_string(v));
      }
      if (v == 1.f) {
        if (start < 0) start = s;
        else if (end >= 0) {
          throw std::invalid_argument(
              std::string(op) + ": mask row " + std::to_string(r) + " is not one run of ones (a step at " +
              std::to_string(s) + " after padding at " + std::to_string(end) +
              "); oneDNN's RNN runs whole runs, so only padding before and after a sequence is supported");
        }
      } else if (start >= 0 && end < 0) {
        end = s;
      }
    }
    if (start < 0) start = end = 0;
    if (end < 0) end = t;
    Group& g = groups[{start, end}];
    g.start = start, g.end = end;
    g.rows.push_back(r);
  }
  std::vector<Group> out;
  for (auto& [key, g] : groups) {
    g.whole = g.start == 0 && g.end == t && static_cast<int64_t>(g.rows.size()) == b;
    out.push_back(std::move(g));
  }
  return out;
}

// src [B, T, C] rows `rows`, steps [start, end) -> [rows, end - start, C].
Tensor gather_steps(const Tensor& src, const Group& g) {
  const int64_t t = src.shape()[1], c = src.shape()[2], len = g.end - g.start;
  Tensor out = Tensor::empty({static_cast<int64_t>(g.rows.size()), len, c}, src.dtype());
  const Rows s(src), o(out);
  for (size_t k = 0; k < g.rows.size(); ++k) o.copy(s, (g.rows[k] * t + g.start) * c, k * len * c, len * c);
  return out;
}

Tensor gather_rows(const Tensor& src, const std::vector<int64_t>& rows) {
  const int64_t c = src.shape()[1];
  Tensor out = Tensor::empty({static_cast<int64_t>(rows.size()), c}, src.dtype());
  const Rows s(src), o(out);
  for (size_t k = 0; k < rows.size(); ++k) o.copy(s, rows[k] * c, k * c, c);
  return out;
}

struct Saved {
  RnnCell cell;
  RnnOptions options;
  int64_t b, t, i, u;
  RnnWeights w;
  std::vector<Group> groups;
  Tensor h0, c0;  // h0 in the pass's dtype, c0 f32
  DType data;     // the pass's dtype (rnn_detail::RnnWeights)
  DType x_dtype, kernel_dtype, recurrent_dtype, bias_dtype, h0_dtype, c0_dtype;
};

// One pass ran every row over every step (no mask split the batch).
bool one_whole_pass(const Saved& s) { return s.groups.size() == 1 && s.groups[0].whole; }

// The run's outputs in reading order: sequence and h in the pass's dtype, LSTM's c in f32.
// One pass over every row and step is its own output where no backward will read its
// tensors (inference, or the composed LSTM, which keeps its own), without a copy.
std::vector<Tensor> assemble(const Saved& s, bool record) {
  const int64_t t = s.t, u = s.u;
  const bool lstm = rnn_detail::has_cell_state(s.cell);
  if (one_whole_pass(s)) {
    const RnnPass& pass = s.groups[0].pass;
    if (!record || (!pass.chunks.empty() && pass.chunks.front().composed)) {
      std::vector<Tensor> out{pass.y, pass.h};
      if (lstm) out.push_back(pass.c);
      return out;
    }
  }
  Tensor seq = Tensor::empty({s.b, t, u}, s.data), h = Tensor::empty({s.b, u}, s.data), c;
  if (lstm) c = Tensor::empty({s.b, u});
  const Rows seq_rows(seq), h_rows(h), h0_rows(s.h0);
  std::vector<char> zeros(u * seq_rows.elem, 0);  // bf16's and f32's zero are all-zero bytes
  for (const Group& g : s.groups) {
    if (g.whole) {
      seq.copy_from(g.pass.y);
      h.copy_from(g.pass.h);
      if (lstm) c.copy_from(g.pass.c);
      continue;
    }
    const int64_t len = g.end - g.start;
    const Rows y_rows = len ? Rows(g.pass.y) : seq_rows, hend_rows = len ? Rows(g.pass.h) : h0_rows;
    for (size_t k = 0; k < g.rows.size(); ++k) {
      const int64_t r = g.rows[k];
      const char* h0 = h0_rows.at(r * u);
      const char* hend = len ? hend_rows.at(k * u) : h0;
      for (int64_t step = 0; step < t; ++step) {
        char* o = seq_rows.at((r * t + step) * u);
        const char* from = step >= g.start && step < g.end ? y_rows.at((k * len + step - g.start) * u)
                           : s.options.zero_output_for_mask ? zeros.data()
                           : step < g.start                  ? h0
                                                              : hend;
        std::memcpy(o, from, u * seq_rows.elem);
      }
      std::memcpy(h_rows.at(r * u), hend, u * h_rows.elem);
      if (lstm) {
        const float* cend = len ? g.pass.c.data<float>() + k * u : s.c0.data<float>() + r * u;
        std::copy_n(cend, u, c.data<float>() + r * u);
      }
    }
  }
  std::vector<Tensor> out{seq, h};
  if (lstm) out.push_back(c);
  return out;
}

Tensor zeros_if_undefined(const Tensor& g, const Shape& shape) { return g.defined() ? as_f32(g) : Tensor::zeros(shape); }

Tensor in_dtype(const Tensor& t, DType dtype) { return t.dtype() == dtype ? t : cast(t, dtype); }

std::vector<Tensor> backward(const Saved& s, const std::vector<Tensor>& grads, bool has_mask, bool initial_state) {
  const int64_t b = s.b, t = s.t, u = s.u;
  const bool lstm = rnn_detail::has_cell_state(s.cell);
  // No gradient for the sequence (return_sequences=False) stays undefined where every row
  // runs whole: the composed LSTM then reads no dy at all.
  Tensor dseq = grads[0].defined() || !one_whole_pass(s) ? zeros_if_undefined(grads[0], {b, t, u}) : Tensor();
  Tensor dh = zeros_if_undefined(grads[1], {b, u});
  Tensor dc = lstm ? zeros_if_undefined(grads[2], {b, u}) : Tensor();
  // An input with no gradient wanted (a model's data) skips dx: the composed LSTM runs no dx
  // GEMM, and nothing is reversed or cast.
  const bool dx_wanted = autograd::needs_input_grad(0);
  Tensor dx = dx_wanted ? Tensor::zeros({b, t, s.i}) : Tensor(), dh0 = Tensor::empty({b, u}), dc0;
  if (lstm) dc0 = Tensor::empty({b, u});
  RnnWeights dw{Tensor::zeros(s.w.layer.shape()), Tensor::zeros(s.w.iter.shape()), Tensor::zeros(s.w.bias.shape())};
  const bool carried = !s.options.zero_output_for_mask;
  const float* ds = dseq.defined() ? dseq.data<float>() : nullptr;
  // The gradient reaching the states carried through masked steps [from, to) of row r.
  auto add_carried = [&](float* into, int64_t r, int64_t from, int64_t to) {
    if (!carried) return;
    for (int64_t step = from; step < to; ++step)
      for (int64_t j = 0; j < u; ++j) into[j] += ds[(r * t + step) * u + j];
  };
  for (const Group& g : s.groups) {
    const int64_t len = g.end - g.start;
    if (len == 0) {
      for (int64_t r : g.rows) {
        float* o = dh0.data<float>() + r * u;
        std::copy_n(dh.data<float>() + r * u, u, o);
        add_carried(o, r, 0, t);
        if (lstm) std::copy_n(dc.data<float>() + r * u, u, dc0.data<float>() + r * u);
      }
      continue;
    }
    Tensor dy = g.whole ? dseq : gather_steps(dseq, g);
    Tensor dh_g = g.whole ? dh : gather_rows(dh, g.rows);
    Tensor dc_g = !lstm ? Tensor() : g.whole ? dc : gather_rows(dc, g.rows);
    if (!g.whole) {
      for (size_t k = 0; k < g.rows.size(); ++k) add_carried(dh_g.data<float>() + k * u, g.rows[k], g.end, t);
    }
    auto in = rnn_detail::rnn_backward(s.cell, g.x, s.w, g.h0, g.c0, g.pass, dy, dh_g, dc_g, &dw, dx_wanted);
    if (g.whole) {
      dx = in.dx, dh0 = in.dh0, dc0 = in.dc0;
      continue;
    }
    for (size_t k = 0; k < g.rows.size(); ++k) {
      const int64_t r = g.rows[k];
      if (dx_wanted) {
        std::copy_n(in.dx.data<float>() + k * len * s.i, len * s.i, dx.data<float>() + (r * t + g.start) * s.i);
      }
      float* o = dh0.data<float>() + r * u;
      std::copy_n(in.dh0.data<float>() + k * u, u, o);
      add_carried(o, r, 0, g.start);
      if (lstm) std::copy_n(in.dc0.data<float>() + k * u, u, dc0.data<float>() + r * u);
    }
  }
  if (dx_wanted && s.options.go_backwards) dx = reverse_time(dx);
  const int gates = rnn_detail::gate_count(s.cell);
  std::vector<Tensor> out{dx_wanted ? in_dtype(dx, s.x_dtype) : Tensor(), in_dtype(view_as(dw.layer, {s.i, gates * u}), s.kernel_dtype),
                          in_dtype(view_as(dw.iter, {u, gates * u}), s.recurrent_dtype),
                          in_dtype(keras_bias_grad(s.cell, dw.bias, u), s.bias_dtype)};
  if (initial_state) out.push_back(in_dtype(dh0, s.h0_dtype));
  if (initial_state && lstm) out.push_back(in_dtype(dc0, s.c0_dtype));
  if (has_mask) out.push_back(Tensor());
  return out;
}

std::vector<Tensor> run_rnn(RnnCell cell, const RnnInputs& in, const RnnOptions& options) {
  const char* op = rnn_detail::cell_name(cell);
  const int64_t u = check_inputs(cell, in);
  const bool lstm = rnn_detail::has_cell_state(cell);
  const bool initial_state = in.h0.defined();
  std::vector<Tensor> inputs{in.x, in.kernel, in.recurrent_kernel, in.bias};
  if (initial_state) inputs.push_back(in.h0);
  if (initial_state && lstm) inputs.push_back(in.c0);
  if (in.mask.defined()) inputs.push_back(in.mask);
  const bool record = autograd::should_record(inputs);

  auto saved = std::make_shared<Saved>();
  Saved& s = *saved;
  s.cell = cell, s.options = options;
  s.b = in.x.shape()[0], s.t = in.x.shape()[1], s.i = in.x.shape()[2], s.u = u;
  s.x_dtype = in.x.dtype(), s.kernel_dtype = in.kernel.dtype(), s.recurrent_dtype = in.recurrent_kernel.dtype();
  s.bias_dtype = in.bias.dtype();
  s.h0_dtype = initial_state ? in.h0.dtype() : DType::f32;
  s.c0_dtype = initial_state && lstm ? in.c0.dtype() : DType::f32;
  // bf16 input runs oneDNN's bf16 RNN where the CPU has it, else f32 arithmetic on its values.
  s.data = in.x.dtype() == DType::bf16 && rnn_detail::native_bf16_rnn() ? DType::bf16 : DType::f32;
  std::vector<Tensor> outputs;
  {
    autograd::QuietScope quiet;
    Tensor x = as_dtype(in.x, s.data), mask = in.mask.defined() ? detail::dense(in.mask) : Tensor();
    if (options.go_backwards) {
      x = reverse_time(x);
      if (mask.defined()) mask = view_as(reverse_time(view_as(mask, {s.b, s.t, 1})), {s.b, s.t});
    }
    s.w = {as_dtype(in.kernel, s.data), as_dtype(in.recurrent_kernel, s.data), rnn_detail::onednn_bias(cell, as_f32(in.bias), u)};
    s.h0 = initial_state ? as_dtype(in.h0, s.data) : Tensor::zeros({s.b, u}, s.data);
    if (lstm) s.c0 = initial_state ? as_f32(in.c0) : Tensor::zeros({s.b, u});
    s.groups = group_rows(mask, s.b, s.t, op);
    for (Group& g : s.groups) {
      if (g.end == g.start) continue;
      g.x = g.whole ? x : gather_steps(x, g);
      g.h0 = g.whole ? s.h0 : gather_rows(s.h0, g.rows);
      if (lstm) g.c0 = g.whole ? s.c0 : gather_rows(s.c0, g.rows);
      g.pass = rnn_detail::rnn_forward(cell, g.x, s.w, g.h0, g.c0, record);
    }
    for (const Tensor& o : assemble(s, record)) outputs.push_back(in_dtype(o, in.x.dtype()));
  }
  if (record) {
    const bool has_mask = in.mask.defined();
    autograd::record_lazy(
        op,
        [&] {
          return ops::Attrs(op)
              .set("initial_state", initial_state)
              .set("go_backwards", options.go_backwards)
              .set("zero_output_for_mask", options.zero_output_for_mask);
        },
        inputs, outputs, [saved, inputs, has_mask, initial_state, op](const std::vector<Tensor>& g) {
          std::vector<Tensor> grads;
          {
            autograd::QuietScope quiet;
            grads = backward(*saved, g, has_mask, initial_state);
          }
          std::vector<Tensor> given(inputs);
          given.insert(given.end(), g.begin(), g.end());
          autograd::record_without_second_order((std::string(op) + "_backward").c_str(), given, grads);
          return grads;
        });
  }
  return outputs;
}

}  // namespace

std::vector<Tensor> lstm(const Tensor& x, const Tensor& kernel, const Tensor& recurrent_kernel, const Tensor& bias,
                         const Tensor& h0, const Tensor& c0, const Tensor& mask, const RnnOptions& options) {
  return run_rnn(RnnCell::lstm, {x, kernel, recurrent_kernel, bias, h0, c0, mask}, options);
}

std::vector<Tensor> gru(const Tensor& x, const Tensor& kernel, const Tensor& recurrent_kernel, const Tensor& bias,
                        const Tensor& h0, const Tensor& mask, const RnnOptions& options) {
  return run_rnn(RnnCell::gru, {x, kernel, recurrent_kernel, bias, h0, Tensor(), mask}, options);
}

std::vector<Tensor> simple_rnn(const Tensor& x, const Tensor& kernel, const Tensor& recurrent_kernel,
                               const Tensor& bias, const Tensor& h0, const Tensor& mask, const RnnOptions& options) {
  return run_rnn(RnnCell::simple_rnn, {x, kernel, recurrent_kernel, bias, h0, Tensor(), mask}, options);
}

}  // namespace kiln
