#pragma once
#include <string>
#include <utility>
#include <vector>

namespace kiln::cpu {

// OpenMP settings that suit this machine, in the spirit of bigdl-nano-init: one thread per
// physical core this process may run on, threads bound close together, one place per core.
struct ThreadConfig {
  int logical_cpus = 0;    // CPUs in this process's affinity mask
  int physical_cores = 0;  // distinct cores among them (hyper-threads folded)
  int omp_num_threads = 0;
  std::string omp_proc_bind = "close";
  std::string omp_places = "cores";
  std::vector<std::pair<std::string, std::string>> env() const;
  std::string describe() const;
};

ThreadConfig best_known_config();

// Lets the calling thread run on every online CPU again. OpenMP binding pins the main thread
// to one core, and threads or processes it starts inherit that: a data loader or a child
// benchmark process calls this so it does not share one core with a compute thread.
void unbind_current_thread();

// Puts the configuration into effect: libgomp reads OMP_* only at start-up, so when they are
// not already set this sets them and re-executes the program once (values the user set
// are kept). Call first thing in main(). Prints the configuration when verbose.
ThreadConfig apply_best_known_config(int argc, char** argv, bool verbose = true);

}  // namespace kiln::cpu
