#include "nn/strategy.h"

#include <mutex>
#include <stdexcept>

namespace kiln::nn {
namespace {
std::mutex& factory_mu() {
  static std::mutex mu;
  return mu;
}
StrategyFactory& factory() {
  static StrategyFactory f;
  return f;
}
}  // namespace

void register_strategy_factory(StrategyFactory f) {
  std::lock_guard<std::mutex> lock(factory_mu());
  factory() = std::move(f);
}

std::shared_ptr<TrainingStrategy> make_strategy(int num_processes, const DistributedOptions& options) {
  if (num_processes < 1) {
    throw std::invalid_argument("fit: num_processes must be at least 1, got " + std::to_string(num_processes));
  }
  StrategyFactory f;
  {
    std::lock_guard<std::mutex> lock(factory_mu());
    f = factory();
  }
  if (f) return f(num_processes, options);
  if (num_processes == 1) return nullptr;
  throw std::invalid_argument("fit: num_processes=" + std::to_string(num_processes) +
                              " needs Kiln's MPI launcher: link //dist into this program (it registers itself)");
}

}  // namespace kiln::nn
