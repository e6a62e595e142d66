#pragma once
// The elementwise half of one LSTM step, which the composed LSTM (lstm_composed.h) runs after
// each recurrent GEMM: Keras's gates i, f, c~, o (sigmoid, sigmoid, tanh, sigmoid),
// c' = f * c + i * c~, h' = o * tanh(c'). Plain loops the compiler vectorizes (an AVX-512 build
// of them where oneDNN's ISA cap allows it), and the same arithmetic written with AVX-512
// intrinsics where the CPU converts to bf16 itself (AVX512-BF16), with a degree-5 polynomial
// exp (oneDNN's own kernels' coefficients): exp's relative error is under 2e-7 over the
// clamped range (tests/lstm_gate_kernels_test.cc measures it, with sigmoid's and tanh's, in
// every build), a degree less than Cephes' expf, whose polynomial was most of these kernels'
// time.
// Each call covers the units [unit_begin, unit_end) of every batch row, so threads that take
// disjoint unit ranges never write the same element (the bias gradient included).
#include <omp.h>

#include <cstdint>

namespace kiln::rnn_detail {

// Which build of the kernels runs: the best oneDNN may use too (its ISA cap included).
enum class GateIsa { baseline, avx512, avx512_bf16 };
GateIsa gate_isa();

// One forward step. Rows are `batch` long runs: gates [batch, 4U], states [batch, U].
struct GateForwardStep {
  int64_t batch = 0, units = 0;
  bool bf16 = false;        // h is stored in bf16 (uint16_t), else f32
  float* gates = nullptr;   // pre-activations in, activations out (kept for the backward)
  const float* c_prev = nullptr;
  float* c_next = nullptr;
  void* h_next = nullptr;   // the next step's GEMM input, `batch` rows of U
  int64_t h_row_stride = 0; // elements between batch rows of h_next
  void* y = nullptr;        // the sequence output's rows for this step
  int64_t y_row_stride = 0; // elements between batch rows of y
};
void lstm_gates_forward(const GateForwardStep& s, int64_t unit_begin, int64_t unit_end, GateIsa isa = gate_isa());

// One backward step: dh = dy + dh_recurrent, the cell's gradient dc carried in place (dc
// of the next step in, of this step out), the pre-activation gradients dgates (bf16 or f32,
// what the GEMMs read) and their sum over the batch added into dbias [4U] (f32).
struct GateBackwardStep {
  int64_t batch = 0, units = 0;
  bool bf16 = false;              // dgates stored in bf16 (uint16_t), else f32
  const float* gates = nullptr;   // the forward's activations [batch, 4U]
  const float* c_prev = nullptr;  // [batch, U]
  const float* c = nullptr;       // this step's cell state
  const float* dy = nullptr;      // rows of the sequence output's gradient; null: all zero
  int64_t dy_row_stride = 0;
  const float* dh_recurrent = nullptr;  // [batch, U] from the next step's GEMM
  float* dc = nullptr;
  void* dgates = nullptr;         // [batch, 4U]
  float* dbias = nullptr;
};
void lstm_gates_backward(const GateBackwardStep& s, int64_t unit_begin, int64_t unit_end, GateIsa isa = gate_isa());

// The gate kernels' exp, sigmoid and tanh on n values, as the given build computes them, for
// tests that measure their error.
enum class GateFunction { exp, sigmoid, tanh };
void gate_math(GateFunction fn, const float* x, float* out, int64_t n, GateIsa isa);

// Runs body(unit_begin, unit_end) on `threads` OpenMP threads over disjoint ranges of units
// (multiples of 16 where they divide), or inline for one thread.
template <typename Body>
void over_unit_ranges(int64_t units, int threads, Body&& body) {
  if (threads <= 1) {
    body(int64_t{0}, units);
    return;
  }
  const int64_t per = ((units + threads - 1) / threads + 15) / 16 * 16;
#pragma omp parallel num_threads(threads)
  {
    const int64_t k = omp_get_thread_num();
    const int64_t begin = k * per, end = begin + per < units ? begin + per : units;
    if (begin < end) body(begin, end);
  }
}

}  // namespace kiln::rnn_detail
