// Prints, after cpu::apply_best_known_config (which may restart the program), the thread
// config and the CPUs each OpenMP thread of one parallel region may run on, one line each:
//   thread <k> cpus <list>
// tests/thread_config_reexec_test.sh reads it.
#include <omp.h>
#include <sched.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tensor/threading.h"

int main(int argc, char** argv) {
  const kiln::cpu::ThreadConfig c = kiln::cpu::apply_best_known_config(argc, argv, /*verbose=*/false);
  std::printf("config %s\n", c.describe().c_str());
  std::vector<std::string> cpus(omp_get_max_threads());
#pragma omp parallel
  {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::string list;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
      for (int k = 0; k < CPU_SETSIZE; ++k) {
        if (CPU_ISSET(k, &set)) list += (list.empty() ? "" : ",") + std::to_string(k);
      }
    }
    cpus[omp_get_thread_num()] = list;
  }
  for (size_t k = 0; k < cpus.size(); ++k) std::printf("thread %zu cpus %s\n", k, cpus[k].c_str());
  return 0;
}
