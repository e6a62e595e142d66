#pragma once
#include <string>
#include <utility>
#include <vector>

namespace kiln::cpu {

// How best_known_config() chooses the thread count.
struct ThreadOptions {
  // How long to watch what other processes leave idle before choosing (0: do not look; one
  // thread per core, as on a quiet machine). An OpenMP team sized for cores that other
  // processes are using waits at every barrier for a descheduled member: measured 3-10x
  // slower than one thread on a loaded 2-core machine (benchmarks/results/contention.md).
  int sample_ms = 100;
  // Most looks of sample_ms each; the idlest one counts, and a look that finds every core idle
  // ends the sampling. A burst at start-up (the Bazel server finishing the `bazel run` that
  // started the program kept 0.6 of a core busy for about 100 ms) must not cost a quiet machine
  // its team, while sustained load shows in every look.
  int max_samples = 3;
};

// OpenMP settings that suit this machine, in the spirit of bigdl-nano-init: one thread per
// physical core this process may run on and that other processes leave idle (at least one).
// A team on every core is bound close together, one place per core; a smaller one is left
// unbound (see best_known_config).
struct ThreadConfig {
  int logical_cpus = 0;    // CPUs in this process's affinity mask
  int physical_cores = 0;  // distinct cores among them (hyper-threads folded)
  int omp_num_threads = 0;
  std::string omp_proc_bind = "close";
  std::string omp_places = "cores";
  std::string gomp_spincount;  // libgomp's spin before a waiting thread sleeps (empty: its default)
  double idle_cores = -1;  // cores' worth of CPU time left idle while sampled (-1: not sampled)
  double cpu_quota = 0;    // the cgroup's CPU bandwidth limit in CPUs (0: none)
  std::vector<std::pair<std::string, std::string>> env() const;
  std::string describe() const;
};

ThreadConfig best_known_config(const ThreadOptions& options = {});

// Lets the calling thread run on every online CPU again. OpenMP binding pins the main thread
// to one core, and threads or processes it starts inherit that: a data loader or a child
// benchmark process calls this so it does not share one core with a compute thread.
void unbind_current_thread();

// Puts the configuration into effect: libgomp reads OMP_* only at start-up, so when they are
// not already set this sets them and re-executes the program once (values the user set
// are kept; with OMP_NUM_THREADS set, nothing is sampled). Call first thing in main(), before
// starting threads of your own: the choice is made from the load at that moment. Prints the
// configuration when verbose.
ThreadConfig apply_best_known_config(int argc, char** argv, bool verbose = true);

}  // namespace kiln::cpu
