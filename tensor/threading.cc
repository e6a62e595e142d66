#include "tensor/threading.h"

#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

namespace kiln::cpu {
namespace {

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

}  // namespace

ThreadConfig best_known_config() {
  ThreadConfig c;
  // After apply_best_known_config re-executed the program, OpenMP has bound this thread to
  // one core; the topology measured before the exec travels in the environment.
  if (const char* t = std::getenv("KILN_TOPOLOGY")) {
    if (std::sscanf(t, "%d:%d", &c.physical_cores, &c.logical_cpus) == 2 && c.physical_cores > 0) {
      c.omp_num_threads = c.physical_cores;
      return c;
    }
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  std::set<std::string> cores;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &set)) continue;
      ++c.logical_cpus;
      std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      std::string core = read_line(base + "core_id"), pkg = read_line(base + "physical_package_id");
      cores.insert(core.empty() ? "cpu" + std::to_string(cpu) : pkg + ":" + core);
    }
  }
  if (c.logical_cpus == 0) c.logical_cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  c.physical_cores = cores.empty() ? c.logical_cpus : static_cast<int>(cores.size());
  c.omp_num_threads = std::max(1, c.physical_cores);
  return c;
}

std::vector<std::pair<std::string, std::string>> ThreadConfig::env() const {
  return {{"OMP_NUM_THREADS", std::to_string(omp_num_threads)},
          {"OMP_PROC_BIND", omp_proc_bind},
          {"OMP_PLACES", omp_places}};
}

std::string ThreadConfig::describe() const {
  std::string s = std::to_string(physical_cores) + " physical cores (" + std::to_string(logical_cpus) +
                  " logical CPUs available):";
  for (auto& [k, v] : env()) {
    const char* actual = std::getenv(k.c_str());
    s += " " + k + "=" + (actual ? actual : v);
  }
  return s;
}

void unbind_current_thread() {
  cpu_set_t all;
  CPU_ZERO(&all);
  for (int c = 0; c < sysconf(_SC_NPROCESSORS_ONLN) && c < CPU_SETSIZE; ++c) CPU_SET(c, &all);
  sched_setaffinity(0, sizeof all, &all);
}

ThreadConfig apply_best_known_config(int argc, char** argv, bool verbose) {
  ThreadConfig c = best_known_config();
  bool changed = false;
  for (auto& [k, v] : c.env()) {
    if (!std::getenv(k.c_str())) {
      setenv(k.c_str(), v.c_str(), 1);
      changed = true;
    }
  }
  if (changed && !std::getenv("KILN_THREAD_CONFIG_APPLIED")) {
    setenv("KILN_THREAD_CONFIG_APPLIED", "1", 1);
    setenv("KILN_TOPOLOGY", (std::to_string(c.physical_cores) + ":" + std::to_string(c.logical_cpus)).c_str(), 1);
    std::vector<char*> args(argv, argv + argc);
    args.push_back(nullptr);
    std::fflush(stdout);
    execv("/proc/self/exe", args.data());
    // exec failed: carry on with whatever the OpenMP runtime already read.
  }
  if (verbose) std::printf("kiln thread config: %s\n", c.describe().c_str());
  return c;
}

}  // namespace kiln::cpu
