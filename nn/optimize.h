#pragma once
#include <optional>
#include <string>

#include "nn/model.h"
#include "optim/optimizer.h"
#include "tensor/dtype.h"

namespace kiln {

// What ipex.optimize does for PyTorch, for a Kiln model about to train.
struct OptimizeOptions {
  // The compute dtype to prepare for: f32, or bf16 (Keras's "mixed_bfloat16": f32 master
  // weights, bf16 compute). Unset keeps the model's policy. A built model cannot change its
  // policy, so a different dtype for a built model is an error.
  std::optional<DType> dtype;
  // Keep Conv2D kernels (and the optimizer slots that go with them) in the blocked layout
  // oneDNN's forward convolution reads, across steps: the forward pass then reads the weights
  // with no reorder, and the optimizer updates them in place in that layout.
  bool pack_weights = true;
};

struct OptimizeReport {
  int packed_variables = 0;
  std::string policy;  // the model's dtype policy afterwards
  std::string describe() const;
};

// Prepares `model` (and the optimizer that will train it, if given) for fast training. Packed
// weights keep their Keras shapes: get_weights, save_weights, checkpoints, trace and ONNX
// export read them in the Keras layout (HWIO) through an unpacking copy, and weights loaded
// from a checkpoint are packed on the way in, so checkpoints move freely between optimized and
// plain models. Calling it again with pack_weights = false restores the Keras layout.
OptimizeReport optimize(nn::Model& model, optim::Optimizer* optimizer = nullptr, const OptimizeOptions& options = {});
inline OptimizeReport optimize(nn::Model& model, optim::Optimizer& optimizer, const OptimizeOptions& options = {}) {
  return optimize(model, &optimizer, options);
}

}  // namespace kiln
