#pragma once
// Double-precision step loops of Keras's LSTM, GRU(reset_after=True) and SimpleRNN with its
// masking rules (keras/src/backend/jax/rnn.py): the tests' reference for tensor/ops/rnn.h.
#include <string>
#include <vector>

#include "tests/reference.h"

namespace kiln::ref {

struct RnnRefOptions {
  std::string cell;  // "lstm", "gru", "simple_rnn"
  bool go_backwards = false;
  bool zero_output_for_mask = false;
};

// x [B, T, I], kernel [I, G*U], recurrent_kernel [U, G*U], bias (Keras's shape); h0, c0
// [B, U] or null for zeros; mask [B, T] (1/0) or null. Returns {sequence, h, (c)}.
std::vector<RefTensor> rnn(const RnnRefOptions& o, const RefTensor& x, const RefTensor& kernel,
                           const RefTensor& recurrent_kernel, const RefTensor& bias, const RefTensor* h0,
                           const RefTensor* c0, const RefTensor* mask);

}  // namespace kiln::ref
