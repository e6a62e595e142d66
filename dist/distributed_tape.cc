#include "dist/distributed_tape.h"

#include <map>
#include <memory>
#include <mutex>

namespace kiln::dist {
namespace {
// One reducer (and its bucket buffers) per configuration, reused step after step.
GradientReducer& reducer_for(const ReducerOptions& o) {
  static std::mutex mu;
  static std::map<std::pair<int64_t, bool>, std::unique_ptr<GradientReducer>> reducers;
  std::lock_guard<std::mutex> lock(mu);
  auto& r = reducers[{o.bucket_bytes, o.bf16_communication}];
  if (!r) r = std::make_unique<GradientReducer>(o);
  return *r;
}
}  // namespace

DistributedGradientTape::DistributedGradientTape(ReducerOptions options, bool persistent)
    : GradientTape(persistent), options_(options) {}

std::vector<Tensor> DistributedGradientTape::gradient(const Tensor& target, const std::vector<Variable>& sources,
                                                      double weight) {
  GradientReducer& reducer = reducer_for(options_);
  reducer.begin(sources, weight, this);
  try {
    std::vector<Tensor> local = GradientTape::gradient(target, sources);
    return reducer.finish(local);
  } catch (...) {
    reducer.abandon();
    throw;
  }
}

}  // namespace kiln::dist
