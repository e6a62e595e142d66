#pragma once
#include <vector>

#include "autograd/gradient_tape.h"
#include "dist/gradient_reducer.h"

namespace kiln::dist {

// A GradientTape whose gradient() returns the gradients averaged over every rank (Horovod's
// DistributedGradientTape): the one change a custom training step needs. Buckets are
// all-reduced while backward runs. In a world of one it returns the plain gradients.
//
//   dist::DistributedGradientTape tape;
//   auto loss = loss_fn(y, model(x, true));
//   auto grads = tape.gradient(loss, model.trainable_variables());
//   optimizer.apply_gradients(grads, model.trainable_variables());
class DistributedGradientTape : public GradientTape {
 public:
  explicit DistributedGradientTape(ReducerOptions options = {}, bool persistent = false);

  // The mean over ranks of each rank's gradients, weighted by `weight` (give this rank's
  // number of examples when shares of a batch differ; equal weights give the plain mean).
  std::vector<Tensor> gradient(const Tensor& target, const std::vector<Variable>& sources, double weight = 1.0);

 private:
  ReducerOptions options_;
};

}  // namespace kiln::dist
