#pragma once
// Keras's shape layers; neither touches the batch dimension.
#include <string>
#include <vector>

#include "nn/layer.h"

namespace kiln::nn {

// [N, ...] -> [N, target_shape...]; one entry of target_shape may be -1 (inferred).
Layer Reshape(const std::vector<int64_t>& target_shape, const std::string& name = "");
// Reorders the non-batch dimensions: dims is a permutation of 1..rank-1 (1-based, as Keras's),
// output dimension i + 1 is input dimension dims[i].
Layer Permute(const std::vector<int>& dims, const std::string& name = "");

}  // namespace kiln::nn
