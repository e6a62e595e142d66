#pragma once
#include "nn/checkpoint.h"
#include "nn/config.h"
#include "nn/model.h"

namespace kiln::nn {

// What compile() and training have set on a model, as a saved model stores it: the optimizer
// (class, options, schedule), the loss, the metric names and the step counter as a config,
// and the optimizer's slots ("<variable>/<slot>") as tensors.
struct CompileState {
  Config config;
  NamedTensors slots;
};

// The model must be compiled. Throws std::invalid_argument for an optimizer or loss whose class
// cannot be stored.
CompileState save_compile_state(const Model& model);
// Compiles `model`, freshly built from a file, as the state says and restores the slots and
// step counter, so fit() continues where the saved model stopped. It compiles before it checks
// the slots (they are checked against the compiled optimizer), so on a throw the model is
// half-restored: load_model then drops it.
void restore_compile_state(Model& model, const CompileState& state);

}  // namespace kiln::nn
