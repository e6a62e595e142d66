#pragma once
#include <cstdint>

#include "tensor/tensor.h"

// Kiln's own NHWC max pooling for f32 and bf16, forward and backward.
//
// Why not oneDNN's: its 2.6 NHWC max pooling ran at about 10 GB/s on the Keras CNN's
// 32x28x28x16 activations (0.19 ms forward, 0.21 ms backward at 2 threads, Intel Xeon
// AVX-512, 2026-12-01), a quarter of that model's training step, and it drops NaN. These
// loops run along the channels, which are contiguous in NHWC, so each window cell is one
// vector pass, and the backward of non-overlapping windows writes each input cell once
// instead of zero-filling and then scattering.
//
// Values follow PyTorch's CPU kernel: a cell is taken when it is greater than the running
// maximum or is NaN, starting from the window's first cell. So a window with a NaN yields NaN
// (its last NaN is the argmax), a window of -inf yields -inf, and ties go to the first cell
// in row-major window order. The argmax of each output is kept as its cell index in the
// window (u8), which is what the backward reads.
namespace kiln::detail {

struct MaxPoolGeometry {
  int64_t n, h, w, c;     // input, NHWC
  int64_t oh, ow;         // output spatial size
  int64_t kh, kw;         // window
  int64_t sh, sw;         // strides
  int64_t pad_top, pad_left;
};

// f32 and bf16 with windows of at most 256 cells (the argmax must fit a byte).
bool max_pool_kernel_supports(DType dtype, const MaxPoolGeometry& g);

// y: [n, oh, ow, c]; argmax: the same shape in u8, or null when no backward will run.
void max_pool_forward(const MaxPoolGeometry& g, DType dtype, const void* x, void* y, uint8_t* argmax);

// dx: [n, h, w, c], fully written (cells no window took get zero; overlapping windows add).
void max_pool_backward(const MaxPoolGeometry& g, DType dtype, const void* dy, const uint8_t* argmax, void* dx);

}  // namespace kiln::detail
