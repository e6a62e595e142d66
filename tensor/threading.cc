#include "tensor/threading.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

namespace kiln::cpu {
namespace {

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

// Logical CPUs and physical cores in this process's affinity mask.
ThreadConfig topology(cpu_set_t* set) {
  ThreadConfig c;
  CPU_ZERO(set);
  std::set<std::string> cores;
  if (sched_getaffinity(0, sizeof *set, set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, set)) continue;
      ++c.logical_cpus;
      std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      std::string core = read_line(base + "core_id"), pkg = read_line(base + "physical_package_id");
      cores.insert(core.empty() ? "cpu" + std::to_string(cpu) : pkg + ":" + core);
    }
  }
  if (c.logical_cpus == 0) {
    c.logical_cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    for (int cpu = 0; cpu < c.logical_cpus && cpu < CPU_SETSIZE; ++cpu) CPU_SET(cpu, set);
  }
  c.physical_cores = cores.empty() ? c.logical_cpus : static_cast<int>(cores.size());
  return c;
}

// Idle plus iowait clock ticks, summed over the CPUs in the set (/proc/stat's per-CPU lines).
// iowait counts as idle: a CPU waiting on I/O would run our thread at once.
long long idle_ticks(const cpu_set_t& set) {
  std::ifstream in("/proc/stat");
  long long sum = 0;
  for (std::string line; std::getline(in, line);) {
    int cpu = -1;
    long long user, nice, system, idle, iowait;
    if (std::sscanf(line.c_str(), "cpu%d %lld %lld %lld %lld %lld", &cpu, &user, &nice, &system, &idle, &iowait) != 6)
      continue;  // also skips the aggregate "cpu " line
    if (cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &set)) sum += idle + iowait;
  }
  return sum;
}

// CPUs' worth of time the CPUs in the set stayed idle over the next ms milliseconds, or -1.
// The kernel keeps idle time in nanoseconds but shows it in 10 ms ticks, so the figure is good
// to about 0.1 CPU per CPU at 100 ms: enough to tell a busy core from an idle one.
double sample_idle_cpus(const cpu_set_t& set, int ms) {
  long hz = sysconf(_SC_CLK_TCK);
  auto t0 = std::chrono::steady_clock::now();
  long long before = idle_ticks(set);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  long long after = idle_ticks(set);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (hz <= 0 || secs <= 0 || before <= 0) return -1;  // no /proc/stat (not Linux, or hidden)
  return std::clamp((after - before) / (secs * hz), 0.0, static_cast<double>(CPU_COUNT(&set)));
}

// The tightest CPU bandwidth limit (CFS quota) on this process's cgroup or its ancestors, in
// CPUs; 0 when there is none. A team larger than the quota is throttled as a whole, every
// thread stopped until the next period, so the quota caps the thread count like busy cores do.
double cgroup_cpu_quota() {
  double best = 0;
  auto consider = [&](double quota, double period) {
    if (quota > 0 && period > 0 && (best == 0 || quota / period < best)) best = quota / period;
  };
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = "," + line.substr(a + 1, b - a - 1) + ",";
    bool v2 = controllers == ",,", v1 = controllers.find(",cpu,") != std::string::npos;
    if (!v2 && !v1) continue;
    // Inside a container the path may name the host's hierarchy: every ancestor that exists
    // here is checked, down to the container's root.
    for (std::string path = line.substr(b + 1);;) {
      if (v2) {
        double quota = 0, period = 0;
        std::string max = read_line("/sys/fs/cgroup" + path + "/cpu.max");
        if (std::sscanf(max.c_str(), "%lf %lf", &quota, &period) == 2) consider(quota, period);
      } else {
        for (const char* root : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"}) {
          std::string dir = root + path;
          std::string quota = read_line(dir + "/cpu.cfs_quota_us"), period = read_line(dir + "/cpu.cfs_period_us");
          if (!quota.empty() && !period.empty()) consider(std::atof(quota.c_str()), std::atof(period.c_str()));
        }
      }
      if (path.empty() || path == "/") break;
      auto slash = path.find_last_of('/');
      path = slash == 0 ? "/" : path.substr(0, slash);
    }
  }
  return best;
}

// Binding and waiting, once the thread count is known.
void choose_binding(ThreadConfig& c) {
  // A team on every core is bound close: measured no slower on a quiet machine, and it keeps
  // each thread's cache. A smaller team (or one thread) is left to the scheduler: bound, every
  // such Kiln process would start on the first core, and two of them, or one and a busy
  // neighbour, would share it while another core idles.
  if (c.omp_num_threads < c.physical_cores) c.omp_proc_bind = "false";
  // libgomp spins 300000 pauses (about 10 ms here) before a waiting thread sleeps. When load
  // arrives after the team was sized, a member spinning at a barrier on a shared core burns the
  // time slice its stalled partner needs. 10000 (about 0.35 ms) still covers the gaps between
  // parallel regions of a training step.
  if (c.omp_num_threads > 1) c.gomp_spincount = "10000";
}

}  // namespace

ThreadConfig best_known_config(const ThreadOptions& options) {
  ThreadConfig c;
  // After apply_best_known_config re-executed the program, OpenMP has bound this thread to
  // one core and our own threads may be busy; the measurements made before the exec travel in
  // the environment (older "physical:logical" values still parse).
  if (const char* t = std::getenv("KILN_TOPOLOGY")) {
    int n = std::sscanf(t, "%d:%d:%d:%lf:%lf", &c.physical_cores, &c.logical_cpus, &c.omp_num_threads,
                        &c.idle_cores, &c.cpu_quota);
    if (n >= 2 && c.physical_cores > 0) {
      if (n < 3 || c.omp_num_threads < 1) c.omp_num_threads = c.physical_cores;
      choose_binding(c);
      return c;
    }
    c = ThreadConfig();
  }
  cpu_set_t set;
  ThreadConfig topo = topology(&set);
  c.logical_cpus = topo.logical_cpus;
  c.physical_cores = topo.physical_cores;
  int threads = std::max(1, c.physical_cores);
  c.cpu_quota = cgroup_cpu_quota();
  if (c.cpu_quota > 0) threads = std::clamp(static_cast<int>(c.cpu_quota), 1, threads);
  if (options.sample_ms > 0) {
    double idle_cpus = sample_idle_cpus(set, options.sample_ms);
    if (idle_cpus >= 0) {
      c.idle_cores = idle_cpus * c.physical_cores / c.logical_cpus;
      // Round to the nearest core: a core at least half idle gets a thread. A core that other
      // processes keep mostly busy would hold the whole team back at every barrier, while a
      // short burst from a daemon during the sample must not halve a quiet machine's speed.
      threads = std::clamp(static_cast<int>(std::floor(c.idle_cores + 0.5)), 1, threads);
    }
  }
  c.omp_num_threads = threads;
  choose_binding(c);
  return c;
}

std::vector<std::pair<std::string, std::string>> ThreadConfig::env() const {
  std::vector<std::pair<std::string, std::string>> env = {{"OMP_NUM_THREADS", std::to_string(omp_num_threads)},
                                                           {"OMP_PROC_BIND", omp_proc_bind},
                                                           {"OMP_PLACES", omp_places}};
  if (!gomp_spincount.empty()) env.emplace_back("GOMP_SPINCOUNT", gomp_spincount);
  return env;
}

std::string ThreadConfig::describe() const {
  std::string s = std::to_string(physical_cores) + " physical cores (" + std::to_string(logical_cpus) +
                  " logical CPUs available";
  char buf[96];
  if (idle_cores >= 0) {
    std::snprintf(buf, sizeof buf, "; %.1f cores idle at start", idle_cores);
    s += buf;
  }
  if (cpu_quota > 0) {
    std::snprintf(buf, sizeof buf, "; cgroup CPU quota %.2f", cpu_quota);
    s += buf;
  }
  s += "):";
  for (auto& [k, v] : env()) {
    const char* actual = std::getenv(k.c_str());
    const char* policy = std::getenv("OMP_WAIT_POLICY");
    if (k == "GOMP_SPINCOUNT" && !actual && policy) {
      s += std::string(" OMP_WAIT_POLICY=") + policy;  // apply_best_known_config keeps the user's policy
      continue;
    }
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
  // A thread count the user chose needs no sample of the load (and no 100 ms wait).
  ThreadOptions options;
  if (std::getenv("OMP_NUM_THREADS")) options.sample_ms = 0;
  ThreadConfig c = best_known_config(options);
  bool changed = false;
  for (auto& [k, v] : c.env()) {
    // GOMP_SPINCOUNT would override a wait policy the user chose (libgomp prefers it).
    if (k == "GOMP_SPINCOUNT" && std::getenv("OMP_WAIT_POLICY")) continue;
    if (!std::getenv(k.c_str())) {
      setenv(k.c_str(), v.c_str(), 1);
      changed = true;
    }
  }
  if (changed && !std::getenv("KILN_THREAD_CONFIG_APPLIED")) {
    setenv("KILN_THREAD_CONFIG_APPLIED", "1", 1);
    char topo[96];
    std::snprintf(topo, sizeof topo, "%d:%d:%d:%.2f:%.2f", c.physical_cores, c.logical_cpus, c.omp_num_threads,
                  c.idle_cores, c.cpu_quota);
    setenv("KILN_TOPOLOGY", topo, 1);
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
