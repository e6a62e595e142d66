#pragma once
// An LSTM training pass composed of oneDNN matmul primitives (through Kiln's onednn helpers)
// and the gate kernels of lstm_gate_kernels.h: what rnn_forward(training) and rnn_backward
// run for the LSTM cell instead of oneDNN 2.6's lstm_forward / lstm_backward, which it beat
// by 1.2-1.5x at one thread (benchmarks/results/rnn_composition.md). Same cell, weights and
// layouts as rnn_primitive.h's (Keras's gate order i, f, c~, o; kernel [I, 4U], recurrent
// kernel [U, 4U] in the pass's dtype, bias [4U] f32; x and y [B, T, .]; every gradient f32).
//
// Internally time-major, so that each step's rows are one dense block for its GEMM and the
// weight gradients are GEMMs over all T * B rows at once. Two ways to bring x into the gates
// (LstmInputGemm):
//   separate: G = x W + b for every step at once ([T B, I] x [I, 4U], f32 out), then per step
//             G[t] += h[t-1] U (a sum post-op) and the gate kernel (h and y in the dtype);
//             the backward's weight gradients are dU = H^T dG and dW = x^T dG.
//   merged:   x[t] and h[t-1] side by side in one buffer, so that each step is one GEMM
//             G[t] = [x[t] | h[t-1]] [W; U] + b (the gate kernel writes h[t] into the next
//             step's rows), and the weight gradients one GEMM [W; U]' = [x | H]^T dG.
// The backward: per step, last first, the gate kernel (dG[t] in the dtype) and
// dh[t-1] = dG[t] U^T; then the weight gradients, and only when x wants a gradient dx = dG W^T.
// The forward keeps what the backward reads (x, every step's activations, h and c), so the
// backward may run more than once. Each piece is a public method so that
// benchmarks/rnn_composition_benchmark.cc can time it alone; forward() and backward() run
// them in order.
#include <cstdint>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "tensor/onednn/primitive_cache.h"
#include "tensor/scoped_override.h"
#include "tensor/tensor.h"

namespace kiln::rnn_detail {

struct LstmShape {
  int64_t batch = 0, steps = 0, inputs = 0, units = 0;
  DType dtype = DType::f32;  // x, h, y and the weights; c, gate pre-activations, gradients f32
};

// Which of oneDNN's matmul implementations each GEMM runs.
//   rule: gemm:jit (the first implementation that is not brgemm) for every GEMM, except the
//     bf16 backward's recurrent GEMM and dx, where brgemm stays. At one thread gemm:jit was
//     faster for every other GEMM at f32 and bf16, b32 and b128 (up to 1.45x on the forward's
//     recurrent GEMM), brgemm for those two in bf16 (dx 0.36 against 0.63 ms at b128); see
//     benchmarks/results/rnn_composition.md. Where oneDNN offers no gemm:jit (its next choice
//     would be a reference kernel) brgemm stays too.
//     The merged input's GEMMs (LstmInputGemm::merged) keep gemm:jit too: with brgemm
//     (--inputs separate,merged,merged:auto, bf16 b128, one thread, one run) its step GEMMs
//     alone ran 1.13 against 1.21 ms, but the whole forward 1.80 against 1.74 ms, and the
//     weight-gradient GEMM 1.19 against 1.17 ms (at b32 the forward 0.485 against 0.489).
//   onednn_first: oneDNN's first choice everywhere (brgemm on AVX-512);
//   avoid_brgemm: the rule without its bf16 exceptions (the benchmark's comparisons).
enum class LstmGemmChoice { rule, onednn_first, avoid_brgemm };

// How x reaches the gates (see above); automatic picks by the batch (lstm_composed.cc says
// from which measurements).
enum class LstmInputGemm { automatic, separate, merged };

// Tests: ComposedLstms made on this thread while this lives take `way` where they are asked
// for automatic (what the LSTM op's passes ask for).
class ForceLstmInputGemm {
 public:
  explicit ForceLstmInputGemm(LstmInputGemm way);

 private:
  ScopedOverride<LstmInputGemm> override_;
};

class ComposedLstm {
 public:
  // kernel [I, 4U] and recurrent [U, 4U] in shape.dtype, bias [4U] f32; kept by reference
  // (Tensor handles), read at each pack. The gate kernels run on `threads` threads (oneDNN's
  // GEMMs on OpenMP's: one inside a parallel region).
  ComposedLstm(const LstmShape& shape, const Tensor& kernel, const Tensor& recurrent, const Tensor& bias,
               int threads, LstmGemmChoice choice = LstmGemmChoice::rule,
               LstmInputGemm input_gemm = LstmInputGemm::automatic);
  bool merged() const { return merged_; }  // which LstmInputGemm automatic became

  // The whole forward: h0 in the dtype, c0 f32, both [B, U]; x [B, T, I].
  void forward(const Tensor& x, const Tensor& h0, const Tensor& c0);
  // The whole backward of the last forward without dx: dy [B, T, U] (undefined: all zero),
  // dh and dc [B, U], f32.
  void backward(const Tensor& dy, const Tensor& dh, const Tensor& dc);

  // The forward's pieces, in order.
  void pack_forward_weights();          // W and U (merged: [W; U]) into the layouts the GEMMs want
  void load(const Tensor& x, const Tensor& h0, const Tensor& c0);  // x to time-major, states in
  void project_input();                 // separate: G = x W + b; merged: nothing
  void step_gemm(int64_t step);         // separate: G[t] += h[t-1] U; merged: G[t] = [x[t] | h[t-1]] [W; U] + b
  void gates_forward(int64_t step);
  // The backward's pieces, in order.
  void pack_backward_weights();         // U^T
  void start_backward(const Tensor& dh, const Tensor& dc);
  void gates_backward(const Tensor& dy, int64_t step);
  void recurrent_backward_gemm(int64_t step);  // dh[t-1] = dG[t] U^T
  void recurrent_weight_grad();         // separate: dU = H^T dG; merged: both, [W; U]' = [x | H]^T dG
  void input_weight_grad();             // separate: dW = x^T dG; merged: nothing
  // dx = dG W^T, back in [B, T, I] (W^T packed here: only a pass that wants dx pays for it).
  void input_grad();

  // Results (views of the internal buffers, valid until the next pass).
  Tensor y() const { return y_; }
  Tensor h() const;   // [B, U] in the dtype
  Tensor c() const;   // [B, U] f32
  Tensor dx() const { return dx_; }
  Tensor dh0() const { return dh_recurrent_; }
  Tensor dc0() const { return dc_; }
  Tensor dkernel() const { return dkernel_; }
  Tensor drecurrent() const { return drecurrent_; }
  Tensor dbias() const { return dbias_; }

  // oneDNN's implementation of each GEMM, "name=impl, ..." (brgemm, gemm:jit, ref, ...).
  std::string implementations() const;

 private:
  struct Gemm {
    const char* name = nullptr;  // null: not made (the other LstmInputGemm's)
    onednn::CachedPrimitive prim;
  };
  Gemm make_gemm(const char* name, const dnnl::memory::desc& src, const dnnl::memory::desc& weights,
                 const dnnl::memory::desc& dst, const dnnl::memory::desc& bias, bool accumulate, bool brgemm_faster);
  // `plain` in the layout `gemm` wants for its weights, into *packed.
  void pack(const Gemm& gemm, const Tensor& plain, Tensor* packed, dnnl::memory* packed_memory);

  void make_separate_gemms();
  void make_merged_gemms();

  LstmShape s_;
  int threads_;
  LstmGemmChoice choice_;
  bool merged_;
  Tensor kernel_, recurrent_, bias_;
  // Time-major buffers: gates [T, B, 4U] f32 (activations after the step's kernel),
  // c [T + 1, B, U] f32 (c0 first), dgates [T, B, 4U], dx [T, B, I].
  //   separate: x [T, B, I], h [T + 1, B, U] (h0 first).
  //   merged: xh [T, B, I + U], each row [x[t] | h[t-1]]; the last step's h goes to h_last_.
  Tensor x_tm_, h_all_, xh_, h_last_, gates_, c_all_, dgates_, dx_tm_;
  Tensor y_, dx_;                  // [B, T, .]
  Tensor dh_recurrent_, dc_;       // [B, U] f32: the carried gradients, dh0 and dc0 at the end
  // merged: [W; U]' [I + U, 4U] f32, of which dkernel_ and drecurrent_ are row blocks.
  Tensor dstacked_, dkernel_, drecurrent_, dbias_;
  Gemm projection_gemm_, step_gemm_, recurrent_backward_gemm_, recurrent_weights_gemm_, input_weights_gemm_, dx_gemm_;
  Tensor stacked_;                 // merged: [W; U] [I + U, 4U] in the dtype
  Tensor kernel_packed_, step_weights_packed_, recurrent_t_packed_, kernel_t_packed_;
  dnnl::memory kernel_mem_, step_weights_mem_, recurrent_t_mem_, kernel_t_mem_;
};

}  // namespace kiln::rnn_detail
