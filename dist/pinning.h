#pragma once
#include <string>
#include <utility>
#include <vector>

namespace kiln::dist {

// The cores one rank runs on and the OpenMP settings that pin its threads there.
struct RankPlacement {
  std::vector<std::vector<int>> cores;  // logical CPUs of each physical core
  int threads = 1;
  std::string omp_places() const;       // "{0,32},{1,33}": one place per core
  // OMP_NUM_THREADS, OMP_PLACES, OMP_PROC_BIND and Kiln's topology note.
  std::vector<std::pair<std::string, std::string>> env() const;
};

// Physical cores this process may use, each as its logical CPUs. After
// cpu::apply_best_known_config re-executed the program its main thread is bound to one
// core, so then the whole machine's online CPUs are counted.
std::vector<std::vector<int>> available_cores();

// Splits the cores into num_processes disjoint sets of cores/num_processes each (the
// remainder idle). More processes than cores throw std::invalid_argument naming both,
// unless oversubscribe: then each rank gets one core, shared round robin.
std::vector<RankPlacement> place_ranks(int num_processes, bool oversubscribe,
                                       const std::vector<std::vector<int>>& cores);

}  // namespace kiln::dist
