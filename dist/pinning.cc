#include "dist/pinning.h"

#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <cstdio>
#include <map>
#include <stdexcept>

#include "base/files.h"

namespace kiln::dist {

std::string RankPlacement::omp_places() const {
  std::string s;
  for (const auto& core : cores) {
    if (!s.empty()) s += ",";
    s += "{";
    for (size_t i = 0; i < core.size(); ++i) s += (i ? "," : "") + std::to_string(core[i]);
    s += "}";
  }
  return s;
}

std::vector<std::pair<std::string, std::string>> RankPlacement::env() const {
  int logical = 0;
  for (const auto& c : cores) logical += static_cast<int>(c.size());
  return {{"OMP_NUM_THREADS", std::to_string(threads)},
          {"OMP_PLACES", omp_places()},
          {"OMP_PROC_BIND", "close"},
          {"KILN_TOPOLOGY", std::to_string(cores.size()) + ":" + std::to_string(logical)},
          {"KILN_THREAD_CONFIG_APPLIED", "1"}};
}

std::vector<std::vector<int>> available_cores() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  int expected = 0, ignored = 0;
  const char* topo = std::getenv("KILN_TOPOLOGY");
  if (topo && std::sscanf(topo, "%d:%d", &ignored, &expected) == 2 && int(cpus.size()) < expected) {
    cpus.clear();
    for (int c = 0; c < sysconf(_SC_NPROCESSORS_ONLN) && c < CPU_SETSIZE; ++c) cpus.push_back(c);
  }
  if (cpus.empty()) {
    for (int c = 0; c < sysconf(_SC_NPROCESSORS_ONLN) && c < CPU_SETSIZE; ++c) cpus.push_back(c);
  }
  std::map<std::string, std::vector<int>> by_core;  // hyper-threads of one core together
  std::vector<std::string> order;
  for (int c : cpus) {
    std::string topology = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
    std::string core = base::read_first_line(topology + "core_id"), pkg = base::read_first_line(topology + "physical_package_id");
    std::string key = core.empty() ? "cpu" + std::to_string(c) : pkg + ":" + core;
    if (!by_core.count(key)) order.push_back(key);
    by_core[key].push_back(c);
  }
  std::vector<std::vector<int>> out;
  for (const auto& k : order) out.push_back(by_core[k]);
  return out;
}

std::vector<RankPlacement> place_ranks(int n, bool oversubscribe, const std::vector<std::vector<int>>& cores) {
  if (n < 1) throw std::invalid_argument("num_processes must be at least 1, got " + std::to_string(n));
  if (cores.empty()) throw std::runtime_error("no CPU cores are available to this process");
  const int c = static_cast<int>(cores.size());
  std::vector<RankPlacement> out(n);
  if (n > c) {
    if (!oversubscribe) {
      throw std::invalid_argument("num_processes=" + std::to_string(n) + " is more than the " + std::to_string(c) +
                                  " cores available to this process; ask for oversubscription explicitly "
                                  "(FitOptions.distributed.oversubscribe = true, LaunchOptions.oversubscribe = true)");
    }
    for (int r = 0; r < n; ++r) out[r].cores = {cores[r % c]};
    return out;
  }
  const int per = c / n;
  for (int r = 0; r < n; ++r) {
    out[r].cores.assign(cores.begin() + r * per, cores.begin() + (r + 1) * per);
    out[r].threads = per;
  }
  return out;
}

}  // namespace kiln::dist
