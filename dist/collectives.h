#pragma once
// Collectives over the MPI world, each a thin layer over one MPI call. Every rank must make
// the same calls in the same order with tensors of the same shape and dtype. Under a launcher
// the first one starts MPI; in a world of one they leave their arguments as they are.
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace kiln::dist {

enum class ReduceOp { sum, mean };

// Overwrites t (contiguous, any dtype) with root's t.
void broadcast(const Tensor& t, int root = 0);
// In place: t (contiguous, f32 or bf16) becomes the sum (or mean) over the ranks. A bf16
// payload travels as bf16; each addition runs in f32 and is rounded once to bf16.
void allreduce(const Tensor& t, ReduceOp op = ReduceOp::sum);
// Every rank's value, in rank order.
std::vector<double> allgather(double value);
std::vector<int64_t> allgather(int64_t value);

// For the gradient reducer: a non-blocking in-place sum of n floats or bf16 values.
struct Request {
  void* handle = nullptr;  // an MPI_Request, opaque so callers need no <mpi.h>
};
Request iallreduce_sum(void* data, int64_t n, bool bf16_payload);
// Drives outstanding non-blocking operations forward; true once r is complete.
bool test(Request& r);
void wait(Request& r);

}  // namespace kiln::dist
