#include "tensor/ops/lstm_composed.h"

#include <cstring>
#include <stdexcept>

#include "tensor/ops/lstm_gate_kernels.h"
#include "tensor/onednn/engine.h"

namespace kiln::rnn_detail {
namespace {

using md = dnnl::memory::desc;
constexpr auto kF32 = dnnl::memory::data_type::f32;

md plain(int64_t rows, int64_t cols, dnnl::memory::data_type dt) {
  return md({rows, cols}, dt, dnnl::memory::format_tag::ab);
}
md transposed(int64_t rows, int64_t cols, dnnl::memory::data_type dt) {
  return md({rows, cols}, dt, dnnl::memory::dims{1, rows});
}
md any_layout(int64_t rows, int64_t cols, dnnl::memory::data_type dt) {
  return md({rows, cols}, dt, dnnl::memory::format_tag::any);
}

// Row block [first_row, first_row + rows) of a contiguous [*, cols] tensor.
Tensor rows_of(const Tensor& t, int64_t first_row, int64_t rows, int64_t cols) {
  return t.alias({rows, cols}, {cols, 1}, t.offset() + first_row * cols);
}

// The first rows * cols elements of a contiguous tensor read as the transposed [cols, rows].
Tensor transposed_view(const Tensor& t, int64_t rows, int64_t cols) {
  return t.alias({cols, rows}, {1, cols}, t.offset());
}

char* bytes_of(const Tensor& t) { return static_cast<char*>(t.raw_data()); }

thread_local LstmInputGemm forced_input_gemm = LstmInputGemm::automatic;

// Merged from batch 16 up: benchmarks/rnn_composition_benchmark.cc (--inputs separate,merged,
// one thread, T = 28, I = 28, U = 128, 2026-12-05, load average 2.2-6.1), separate / merged of
// the training pass (forward + backward, thread CPU time), batch 1, 4, 8, 16, 32, 64, 128:
//   f32   0.94x  1.00x  0.98-1.00x  1.01x  1.00-1.02x  1.04x  1.03-1.05x
//   bf16  0.94x  0.97x  0.99-1.00x  1.01x  1.02-1.04x  1.05x  1.06-1.08x
// The win is the forward's (1.10-1.20x at batch 128: no projection pass, no sum post-op
// reading it back); the one weight-gradient GEMM is as fast as the two. Small batches lose:
// each step's GEMM then streams its weights, and [W; U] is (I + U) / U times U's bytes.
bool merged_by_default(const LstmShape& shape) {
  if (forced_input_gemm != LstmInputGemm::automatic) return forced_input_gemm == LstmInputGemm::merged;
  return shape.batch >= 16;
}

}  // namespace

ComposedLstm::ComposedLstm(const LstmShape& shape, const Tensor& kernel, const Tensor& recurrent, const Tensor& bias,
                           int threads, LstmGemmChoice choice, LstmInputGemm input_gemm)
    : s_(shape),
      threads_(threads),
      choice_(choice),
      merged_(input_gemm == LstmInputGemm::merged ||
              (input_gemm == LstmInputGemm::automatic && merged_by_default(shape))),
      kernel_(kernel),
      recurrent_(recurrent),
      bias_(bias) {
  const int64_t b = s_.batch, t = s_.steps, i = s_.inputs, u = s_.units, g = 4 * u;
  const DType d = s_.dtype;
  if (kernel.shape() != Shape{i, g} || recurrent.shape() != Shape{u, g} || bias.shape() != Shape{g} ||
      kernel.dtype() != d || recurrent.dtype() != d || bias.dtype() != DType::f32 || !kernel.is_contiguous() ||
      !recurrent.is_contiguous() || !bias.is_contiguous()) {
    throw std::logic_error("lstm (composed): want kernel [" + std::to_string(i) + ", " + std::to_string(g) +
                                "], recurrent [" + std::to_string(u) + ", " + std::to_string(g) + "] in " +
                                dtype_name(d) + " and bias f32[" + std::to_string(g) + "], contiguous; got " +
                                kernel.describe() + ", " + recurrent.describe() + ", " + bias.describe());
  }
  gates_ = Tensor::empty({t * b, g});
  c_all_ = Tensor::empty({(t + 1) * b, u});
  dgates_ = Tensor::empty({t * b, g}, d);
  dx_tm_ = Tensor::empty({t * b, i});
  y_ = Tensor::empty({b, t, u}, d);
  dx_ = Tensor::empty({b, t, i});
  dh_recurrent_ = Tensor::empty({b, u});
  dc_ = Tensor::empty({b, u});
  dbias_ = Tensor::empty({g});
  if (merged_) {
    make_merged_gemms();
  } else {
    make_separate_gemms();
  }
  const auto dt = onednn::to_dnnl(d);
  const bool bf16 = d == DType::bf16;
  recurrent_backward_gemm_ = make_gemm("composed_lstm_recurrent_backward", plain(b, g, dt), any_layout(g, u, dt),
                                       plain(b, u, kF32), md(), false, bf16);
  dx_gemm_ = make_gemm("composed_lstm_input_grad", plain(t * b, g, dt), any_layout(g, i, dt), plain(t * b, i, kF32), md(),
                       false, bf16);
}

ForceLstmInputGemm::ForceLstmInputGemm(LstmInputGemm way) : override_(forced_input_gemm, way) {}

void ComposedLstm::make_separate_gemms() {
  const int64_t b = s_.batch, t = s_.steps, i = s_.inputs, u = s_.units, g = 4 * u;
  const DType d = s_.dtype;
  const auto dt = onednn::to_dnnl(d);
  x_tm_ = Tensor::empty({t * b, i}, d);
  h_all_ = Tensor::empty({(t + 1) * b, u}, d);
  dkernel_ = Tensor::empty({i, g});
  drecurrent_ = Tensor::empty({u, g});
  projection_gemm_ = make_gemm("composed_lstm_projection", plain(t * b, i, dt), any_layout(i, g, dt),
                               plain(t * b, g, kF32), plain(1, g, kF32), false, false);
  step_gemm_ = make_gemm("composed_lstm_recurrent", plain(b, u, dt), any_layout(u, g, dt), plain(b, g, kF32), md(), true,
                         false);
  recurrent_weights_gemm_ = make_gemm("composed_lstm_recurrent_weight_grad", transposed(u, t * b, dt),
                                      plain(t * b, g, dt), plain(u, g, kF32), md(), false, false);
  input_weights_gemm_ = make_gemm("composed_lstm_input_weight_grad", transposed(i, t * b, dt), plain(t * b, g, dt),
                                  plain(i, g, kF32), md(), false, false);
}

void ComposedLstm::make_merged_gemms() {
  const int64_t b = s_.batch, t = s_.steps, i = s_.inputs, u = s_.units, g = 4 * u;
  const DType d = s_.dtype;
  const auto dt = onednn::to_dnnl(d);
  const int64_t k = i + u;
  // An odd K (bf16 pairs rows for vdpbf16ps) is oneDNN's to pad, in its own packing of both
  // sides, as it already does for the separate projection's odd I.
  xh_ = Tensor::empty({t * b, k}, d);  // load() writes x, the gate kernels h
  h_last_ = Tensor::empty({b, u}, d);
  stacked_ = Tensor::empty({k, g}, d);
  dstacked_ = Tensor::empty({k, g});
  dkernel_ = rows_of(dstacked_, 0, i, g);
  drecurrent_ = rows_of(dstacked_, i, u, g);
  step_gemm_ = make_gemm("composed_lstm_merged_step", plain(b, k, dt), any_layout(k, g, dt), plain(b, g, kF32),
                         plain(1, g, kF32), false, false);
  recurrent_weights_gemm_ = make_gemm("composed_lstm_merged_weight_grad", transposed(k, t * b, dt), plain(t * b, g, dt),
                                      plain(k, g, kF32), md(), false, false);
}

ComposedLstm::Gemm ComposedLstm::make_gemm(const char* name, const md& src, const md& weights, const md& dst,
                                          const md& bias, bool accumulate, bool brgemm_faster) {
  const bool avoid_brgemm = choice_ == LstmGemmChoice::avoid_brgemm || (choice_ == LstmGemmChoice::rule && !brgemm_faster);
  onednn::KeyBuilder key(name);
  key.add(src).add(weights).add(dst).add(int64_t{accumulate}).add(int64_t{avoid_brgemm});
  if (!bias.is_zero()) key.add(bias);
  auto prim = onednn::cached<dnnl::matmul>(name, key, [&] {
    dnnl::primitive_attr attr = onednn::default_attr();
    if (accumulate) {
      dnnl::post_ops sum;
      sum.append_sum(1.f);
      attr.set_post_ops(sum);
    }
    // The descriptor outlives both primitive descriptors: oneDNN 2.6's implementation
    // iterator (next_impl) reads the op descriptor it was made from.
    const auto desc =
        bias.is_zero() ? dnnl::matmul::desc(src, weights, dst) : dnnl::matmul::desc(src, weights, bias, dst);
    dnnl::matmul::primitive_desc first(desc, attr, onednn::cpu_engine());
    if (!avoid_brgemm || std::string(first.impl_info_str()).rfind("brg", 0) != 0) return first;
    dnnl::matmul::primitive_desc next(desc, attr, onednn::cpu_engine());
    while (std::string(next.impl_info_str()).rfind("brg", 0) == 0 && next.next_impl()) {
    }
    return std::string(next.impl_info_str()).rfind("gemm", 0) == 0 ? next : first;
  });
  return {name, prim};
}

void ComposedLstm::pack(const Gemm& gemm, const Tensor& plain_view, Tensor* packed, dnnl::memory* packed_memory) {
  const md want = gemm.prim.pd.query_md(dnnl::query::exec_arg_md, DNNL_ARG_WEIGHTS);
  const dnnl::memory from = onednn::memory_of(plain_view);
  if (want == from.get_desc()) {
    *packed_memory = from;
    return;
  }
  if (!packed->defined()) *packed = onednn::buffer_for(want, s_.dtype, packed_memory);
  onednn::reorder(gemm.name, from, *packed_memory);
}

void ComposedLstm::pack_forward_weights() {
  if (!merged_) {
    pack(projection_gemm_, kernel_, &kernel_packed_, &kernel_mem_);
    pack(step_gemm_, recurrent_, &step_weights_packed_, &step_weights_mem_);
    return;
  }
  std::memcpy(bytes_of(stacked_), bytes_of(kernel_), kernel_.nbytes());
  std::memcpy(bytes_of(stacked_) + kernel_.nbytes(), bytes_of(recurrent_), recurrent_.nbytes());
  pack(step_gemm_, stacked_, &step_weights_packed_, &step_weights_mem_);
}

void ComposedLstm::load(const Tensor& x, const Tensor& h0, const Tensor& c0) {
  const int64_t b = s_.batch, t = s_.steps, i = s_.inputs, u = s_.units;
  const Shape states{b, u};
  if (x.shape() != Shape{b, t, i} || x.dtype() != s_.dtype || !x.is_contiguous() || h0.shape() != states ||
      h0.dtype() != s_.dtype || !h0.is_contiguous() || c0.shape() != states || c0.dtype() != DType::f32 ||
      !c0.is_contiguous()) {
    throw std::logic_error("lstm (composed): want x [" + std::to_string(b) + ", " + std::to_string(t) + ", " +
                                std::to_string(i) + "] and h0 [" + std::to_string(b) + ", " + std::to_string(u) +
                                "] in " + dtype_name(s_.dtype) + ", c0 f32, contiguous; got " + x.describe() + ", " +
                                h0.describe() + ", " + c0.describe());
  }
  std::memcpy(bytes_of(c_all_), bytes_of(c0), c0.nbytes());
  const size_t elem = dtype_size(s_.dtype), row = i * elem;
  const char* from = bytes_of(x);
  if (!merged_) {
    char* to = bytes_of(x_tm_);
    for (int64_t r = 0; r < b; ++r)
      for (int64_t step = 0; step < t; ++step) std::memcpy(to + (step * b + r) * row, from + (r * t + step) * row, row);
    std::memcpy(bytes_of(h_all_), bytes_of(h0), h0.nbytes());
    return;
  }
  const size_t merged_row = (i + u) * elem;
  char* to = bytes_of(xh_);
  for (int64_t r = 0; r < b; ++r) {
    for (int64_t step = 0; step < t; ++step) std::memcpy(to + (step * b + r) * merged_row, from + (r * t + step) * row, row);
    if (t > 0) std::memcpy(to + r * merged_row + row, bytes_of(h0) + r * u * elem, u * elem);
  }
  if (t == 0) h_last_.copy_from(h0);
}

void ComposedLstm::project_input() {
  if (merged_) return;
  const int64_t g = 4 * s_.units;
  onednn::execute(projection_gemm_.name, projection_gemm_.prim.primitive,
                  {{DNNL_ARG_SRC, onednn::memory_of(x_tm_)},
                   {DNNL_ARG_WEIGHTS, kernel_mem_},
                   {DNNL_ARG_BIAS, onednn::memory_as(bias_, {1, g})},
                   {DNNL_ARG_DST, onednn::memory_of(gates_)}});
}

void ComposedLstm::step_gemm(int64_t step) {
  const int64_t b = s_.batch, u = s_.units, g = 4 * u;
  const Tensor gates = rows_of(gates_, step * b, b, g);
  if (!merged_) {
    onednn::execute(step_gemm_.name, step_gemm_.prim.primitive,
                    {{DNNL_ARG_SRC, onednn::memory_of(rows_of(h_all_, step * b, b, u))},
                     {DNNL_ARG_WEIGHTS, step_weights_mem_},
                     {DNNL_ARG_DST, onednn::memory_of(gates)}});
    return;
  }
  onednn::execute(step_gemm_.name, step_gemm_.prim.primitive,
                  {{DNNL_ARG_SRC, onednn::memory_of(rows_of(xh_, step * b, b, s_.inputs + u))},
                   {DNNL_ARG_WEIGHTS, step_weights_mem_},
                   {DNNL_ARG_BIAS, onednn::memory_as(bias_, {1, g})},
                   {DNNL_ARG_DST, onednn::memory_of(gates)}});
}

void ComposedLstm::gates_forward(int64_t step) {
  const int64_t b = s_.batch, u = s_.units;
  const size_t elem = dtype_size(s_.dtype);
  GateForwardStep gs;
  gs.batch = b, gs.units = u, gs.bf16 = s_.dtype == DType::bf16;
  gs.gates = gates_.data<float>() + step * b * 4 * u;
  gs.c_prev = c_all_.data<float>() + step * b * u;
  gs.c_next = c_all_.data<float>() + (step + 1) * b * u;
  if (!merged_) {
    gs.h_next = bytes_of(h_all_) + (step + 1) * b * u * elem;
    gs.h_row_stride = u;
  } else if (step + 1 < s_.steps) {
    const int64_t k = s_.inputs + u;
    gs.h_next = bytes_of(xh_) + ((step + 1) * b * k + s_.inputs) * elem;
    gs.h_row_stride = k;
  } else {
    gs.h_next = bytes_of(h_last_);
    gs.h_row_stride = u;
  }
  gs.y = bytes_of(y_) + step * u * elem;
  gs.y_row_stride = s_.steps * u;
  over_unit_ranges(u, threads_, [&](int64_t j0, int64_t j1) { lstm_gates_forward(gs, j0, j1); });
}

void ComposedLstm::forward(const Tensor& x, const Tensor& h0, const Tensor& c0) {
  pack_forward_weights();
  load(x, h0, c0);
  project_input();
  for (int64_t step = 0; step < s_.steps; ++step) {
    step_gemm(step);
    gates_forward(step);
  }
}

Tensor ComposedLstm::h() const {
  return merged_ ? h_last_ : rows_of(h_all_, s_.steps * s_.batch, s_.batch, s_.units);
}
Tensor ComposedLstm::c() const { return rows_of(c_all_, s_.steps * s_.batch, s_.batch, s_.units); }

void ComposedLstm::pack_backward_weights() {
  pack(recurrent_backward_gemm_, transposed_view(recurrent_, s_.units, 4 * s_.units), &recurrent_t_packed_, &recurrent_t_mem_);
}

void ComposedLstm::start_backward(const Tensor& dh, const Tensor& dc) {
  const Shape states{s_.batch, s_.units};
  for (const Tensor* g : {&dh, &dc}) {
    if (g->shape() != states || g->dtype() != DType::f32 || !g->is_contiguous()) {
      throw std::logic_error("lstm (composed): want dh and dc f32[" + std::to_string(s_.batch) + ", " +
                                  std::to_string(s_.units) + "], contiguous; got " + g->describe());
    }
  }
  dh_recurrent_.copy_from(dh);
  dc_.copy_from(dc);
  dbias_.fill(0.f);
}

void ComposedLstm::gates_backward(const Tensor& dy, int64_t step) {
  const int64_t b = s_.batch, t = s_.steps, u = s_.units;
  if (dy.defined() && (dy.shape() != Shape{b, t, u} || dy.dtype() != DType::f32 || !dy.is_contiguous())) {
    throw std::logic_error("lstm (composed): want dy f32[" + std::to_string(b) + ", " + std::to_string(t) + ", " +
                                std::to_string(u) + "], contiguous; got " + dy.describe());
  }
  GateBackwardStep gs;
  gs.batch = b, gs.units = u, gs.bf16 = s_.dtype == DType::bf16;
  gs.gates = gates_.data<float>() + step * b * 4 * u;
  gs.c_prev = c_all_.data<float>() + step * b * u;
  gs.c = c_all_.data<float>() + (step + 1) * b * u;
  gs.dy = dy.defined() ? dy.data<float>() + step * u : nullptr;
  gs.dy_row_stride = t * u;
  gs.dh_recurrent = dh_recurrent_.data<float>();
  gs.dc = dc_.data<float>();
  gs.dgates = bytes_of(dgates_) + step * b * 4 * u * dtype_size(s_.dtype);
  gs.dbias = dbias_.data<float>();
  over_unit_ranges(u, threads_, [&](int64_t j0, int64_t j1) { lstm_gates_backward(gs, j0, j1); });
}

void ComposedLstm::recurrent_backward_gemm(int64_t step) {
  const int64_t b = s_.batch, u = s_.units;
  onednn::execute(recurrent_backward_gemm_.name, recurrent_backward_gemm_.prim.primitive,
                  {{DNNL_ARG_SRC, onednn::memory_of(rows_of(dgates_, step * b, b, 4 * u))},
                   {DNNL_ARG_WEIGHTS, recurrent_t_mem_},
                   {DNNL_ARG_DST, onednn::memory_of(dh_recurrent_)}});
}

void ComposedLstm::recurrent_weight_grad() {
  const int64_t rows = s_.steps * s_.batch;
  const Tensor src = merged_ ? transposed_view(xh_, rows, s_.inputs + s_.units) : transposed_view(h_all_, rows, s_.units);
  onednn::execute(recurrent_weights_gemm_.name, recurrent_weights_gemm_.prim.primitive,
                  {{DNNL_ARG_SRC, onednn::memory_of(src)},
                   {DNNL_ARG_WEIGHTS, onednn::memory_of(dgates_)},
                   {DNNL_ARG_DST, onednn::memory_of(merged_ ? dstacked_ : drecurrent_)}});
}

void ComposedLstm::input_weight_grad() {
  if (merged_) return;
  const int64_t rows = s_.steps * s_.batch;
  onednn::execute(input_weights_gemm_.name, input_weights_gemm_.prim.primitive,
                  {{DNNL_ARG_SRC, onednn::memory_of(transposed_view(x_tm_, rows, s_.inputs))},
                   {DNNL_ARG_WEIGHTS, onednn::memory_of(dgates_)},
                   {DNNL_ARG_DST, onednn::memory_of(dkernel_)}});
}

void ComposedLstm::backward(const Tensor& dy, const Tensor& dh, const Tensor& dc) {
  pack_backward_weights();
  start_backward(dh, dc);
  for (int64_t step = s_.steps - 1; step >= 0; --step) {
    gates_backward(dy, step);
    recurrent_backward_gemm(step);
  }
  recurrent_weight_grad();
  input_weight_grad();
}

void ComposedLstm::input_grad() {
  const int64_t b = s_.batch, t = s_.steps, i = s_.inputs;
  pack(dx_gemm_, transposed_view(kernel_, i, 4 * s_.units), &kernel_t_packed_, &kernel_t_mem_);
  onednn::execute(dx_gemm_.name, dx_gemm_.prim.primitive,
                  {{DNNL_ARG_SRC, onednn::memory_of(dgates_)},
                   {DNNL_ARG_WEIGHTS, kernel_t_mem_},
                   {DNNL_ARG_DST, onednn::memory_of(dx_tm_)}});
  const float* from = dx_tm_.data<float>();
  float* to = dx_.data<float>();
  for (int64_t r = 0; r < b; ++r)
    for (int64_t step = 0; step < t; ++step) std::memcpy(to + (r * t + step) * i, from + (step * b + r) * i, i * sizeof(float));
}

std::string ComposedLstm::implementations() const {
  std::string out;
  for (const Gemm* g : {&projection_gemm_, &step_gemm_, &recurrent_backward_gemm_, &recurrent_weights_gemm_,
                         &input_weights_gemm_, &dx_gemm_}) {
    if (!g->name) continue;
    std::string name = g->name;
    name = name.substr(std::strlen("composed_lstm_"));
    out += (out.empty() ? "" : ", ") + name + "=" + g->prim.pd.impl_info_str();
  }
  return out;
}

}  // namespace kiln::rnn_detail
