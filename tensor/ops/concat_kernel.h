#pragma once
#include <vector>

#include "tensor/tensor.h"

// Kiln's own concatenation: one pass of memcpy over the output, for any number of inputs.
//
// Why not oneDNN's concat: a primitive per input list has to be keyed, created and cached,
// and chunking it for long lists (predict over hundreds of batches) adds a pass per chunk.
// benchmarks/concat_benchmark runs both at 2, 16 and 1,000 inputs and prints the ratio.
namespace kiln::detail {

// Writes `inputs` side by side along `axis` into `out`. `out` and every input are contiguous,
// of one dtype, and have out's shape except along `axis`, where the inputs' sizes add up to
// out's. The output bytes are split evenly over the OpenMP threads when there are enough.
void concat_into(const Tensor& out, const std::vector<Tensor>& inputs, int axis);

}  // namespace kiln::detail
