#pragma once
// One pass over the broadcast of several tensors, for the element-wise ops oneDNN 2.6 has no
// primitive for (where, the logical ops, erf): each output element is f(the inputs' values at
// its position), computed in f32 and stored in the output's dtype (bf16 rounds once, to
// nearest even). Inputs may be any strided view (broadcast dimensions read with stride 0), so
// a [N, 1, 1, S] mask is never expanded to the [N, H, S, S] scores it selects among.
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "tensor/bf16.h"
#include "tensor/tensor.h"

namespace kiln::detail {

// An input read as float at the element offsets of the output's positions.
struct BroadcastReader {
  const void* base = nullptr;
  DType dtype = DType::f32;
  Strides strides;  // per output dimension, in elements; 0 where broadcast

  BroadcastReader(const Tensor& t, const Shape& out, const char* op) : dtype(t.dtype()) {
    if (t.is_packed()) throw std::invalid_argument(std::string(op) + ": a packed input " + t.describe());
    if (dtype != DType::f32 && dtype != DType::bf16 && dtype != DType::u8) {
      throw std::invalid_argument(std::string(op) + ": expected f32, bf16 or u8, got " + t.describe());
    }
    base = t.numel() ? t.raw_data() : nullptr;
    const size_t lead = out.size() - t.shape().size();
    strides.assign(out.size(), 0);
    for (size_t i = 0; i < t.shape().size(); ++i) strides[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  }
  float at(int64_t offset) const {
    switch (dtype) {
      case DType::bf16: return bf16::to_float(static_cast<const uint16_t*>(base)[offset]);
      case DType::u8: return static_cast<const uint8_t*>(base)[offset];
      default: return static_cast<const float*>(base)[offset];
    }
  }
};

// out (dense f32 or bf16, of the broadcast shape) = f(values of ins) per element.
template <size_t N, typename F>
void broadcast_map(const std::array<const Tensor*, N>& ins, const Tensor& out, const char* op, F f) {
  const Shape& shape = out.shape();
  const int64_t total = out.numel();
  if (total == 0) return;
  std::array<BroadcastReader, N> readers = [&]<size_t... I>(std::index_sequence<I...>) {
    return std::array<BroadcastReader, N>{BroadcastReader(*ins[I], shape, op)...};
  }(std::make_index_sequence<N>{});
  const int rank = static_cast<int>(shape.size());
  const int64_t inner = rank ? shape.back() : 1;
  const int64_t rows = total / inner;
  const bool to_bf16 = out.dtype() == DType::bf16;
  void* dst = out.raw_data();
#pragma omp parallel for schedule(static) if (total > 32768)
  for (int64_t row = 0; row < rows; ++row) {
    std::array<int64_t, N> offset{};
    int64_t rest = row;
    for (int d = rank - 2; d >= 0; --d) {
      const int64_t i = rest % shape[d];
      rest /= shape[d];
      for (size_t k = 0; k < N; ++k) offset[k] += i * readers[k].strides[d];
    }
    std::array<float, N> v;
    for (int64_t j = 0; j < inner; ++j) {
      for (size_t k = 0; k < N; ++k) v[k] = readers[k].at(offset[k] + (rank ? j * readers[k].strides[rank - 1] : 0));
      const float y = f(v);
      if (to_bf16) static_cast<uint16_t*>(dst)[row * inner + j] = bf16::round_from_float(y);
      else static_cast<float*>(dst)[row * inner + j] = y;
    }
  }
}

}  // namespace kiln::detail
