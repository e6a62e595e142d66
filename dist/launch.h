#pragma once
#include <functional>
#include <vector>

#include "autograd/variable.h"

namespace kiln::dist {

struct LaunchOptions {
  // Allow more processes than cores.
  bool oversubscribe = false;
  // When launch started the ranks itself: rank 0's values of these variables (the same
  // variables in every rank's run of main(), e.g. model.variables()) are copied into them in
  // the launching process afterwards, so the model there comes out trained.
  std::vector<Variable> return_variables;
};

// Runs fn in num_processes data-parallel ranks, each pinned to its own cores (Nano's
// @nano(num_processes)). Outside a launcher this process runs itself under mpirun (same
// arguments), waits, and returns; every rank runs main() again up to this call, runs fn and
// ends there, so code before the call must be deterministic enough to reach it. Under the
// user's mpirun it just runs fn in the given world. Inside fn use dist::rank(),
// dist::shard(dataset) and DistributedGradientTape. A rank whose fn throws ends the whole
// job; launch then throws std::runtime_error naming the rank and its message.
void launch(int num_processes, const std::function<void()>& fn, const LaunchOptions& options = {});

}  // namespace kiln::dist
