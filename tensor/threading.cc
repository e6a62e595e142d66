#include "tensor/threading.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "base/files.h"

namespace kiln::cpu {
namespace {

// A physical core in this process's affinity mask: its logical CPUs, and the share of their
// time other processes left idle while sampled.
struct Core {
  std::vector<int> cpus;
  double idle = -1;
};

// The physical cores in this process's affinity mask (hyper-threads folded), in CPU order.
std::vector<Core> available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) == 0) {
    for (int cpu = 0; cpu < sysconf(_SC_NPROCESSORS_ONLN) && cpu < CPU_SETSIZE; ++cpu) CPU_SET(cpu, &set);
  }
  std::vector<Core> cores;
  std::map<std::string, size_t> index;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    std::string topology = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::string core = base::read_first_line(topology + "core_id"), pkg = base::read_first_line(topology + "physical_package_id");
    std::string key = core.empty() ? "cpu" + std::to_string(cpu) : pkg + ":" + core;
    auto [it, added] = index.emplace(key, cores.size());
    if (added) cores.emplace_back();
    cores[it->second].cpus.push_back(cpu);
  }
  return cores;
}

// Idle plus iowait clock ticks of every CPU (indexed by CPU number), from /proc/stat's per-CPU
// lines. iowait counts as idle: a CPU waiting on I/O would run our thread at once.
std::vector<long long> idle_ticks() {
  std::ifstream in("/proc/stat");
  std::vector<long long> ticks;
  for (std::string line; std::getline(in, line);) {
    int cpu = -1;
    long long user, nice, system, idle, iowait;
    if (std::sscanf(line.c_str(), "cpu%d %lld %lld %lld %lld %lld", &cpu, &user, &nice, &system, &idle, &iowait) != 6)
      continue;  // also skips the aggregate "cpu " line
    if (cpu < 0 || cpu >= CPU_SETSIZE) continue;
    if (ticks.size() <= static_cast<size_t>(cpu)) ticks.resize(cpu + 1, -1);
    ticks[cpu] = idle + iowait;
  }
  return ticks;
}

// Fills each core's idle share over the next ms milliseconds; false when /proc/stat is missing.
// The kernel keeps idle time in nanoseconds but shows it in 10 ms ticks, so at 100 ms each
// CPU's share is good to about 0.1: enough to tell a busy core from an idle one.
bool sample_idle(std::vector<Core>& cores, int ms) {
  long hz = sysconf(_SC_CLK_TCK);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<long long> before = idle_ticks();
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  std::vector<long long> after = idle_ticks();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (hz <= 0 || secs <= 0) return false;
  for (Core& core : cores) {
    double sum = 0;
    for (int cpu : core.cpus) {
      if (static_cast<size_t>(cpu) >= before.size() || static_cast<size_t>(cpu) >= after.size() || before[cpu] < 0)
        return false;
      sum += std::clamp((after[cpu] - before[cpu]) / (secs * hz), 0.0, 1.0);
    }
    core.idle = sum / core.cpus.size();
  }
  return true;
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
        std::string max = base::read_first_line("/sys/fs/cgroup" + path + "/cpu.max");
        if (std::sscanf(max.c_str(), "%lf %lf", &quota, &period) == 2) consider(quota, period);
      } else {
        for (const char* root : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"}) {
          std::string dir = root + path;
          std::string quota = base::read_first_line(dir + "/cpu.cfs_quota_us"), period = base::read_first_line(dir + "/cpu.cfs_period_us");
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

// libgomp spins 300000 pauses (10 ms on this machine's Xeon) before a waiting thread sleeps.
// When load arrives after the team was sized, a member spinning at a barrier on a shared core
// burns the time slice its descheduled partner needs: with two busy processes a 2-thread team
// ran 720 img/s with libgomp's spin and 1770 with 10000 pauses (0.35 ms). That still covers the
// gaps between the parallel regions of a training step: on a quiet machine the Keras CNN ran
// 10505 img/s (median of 12) against 10375 (median of 10) with libgomp's spin. A program that
// leaves the team idle for longer (a request loop with think time) pays a futex wake per
// region instead of burning a core; GOMP_SPINCOUNT=300000 restores libgomp's default.
// One thread has no team to wait for.
void choose_spin(ThreadConfig& c) {
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
      if (c.omp_num_threads < c.physical_cores) c.omp_proc_bind = "false";
      choose_spin(c);
      return c;
    }
    c = ThreadConfig();
  }
  std::vector<Core> cores = available_cores();
  c.physical_cores = static_cast<int>(cores.size());
  for (const Core& core : cores) c.logical_cpus += static_cast<int>(core.cpus.size());
  int threads = std::max(1, c.physical_cores);
  c.cpu_quota = cgroup_cpu_quota();
  if (c.cpu_quota > 0) threads = std::clamp(static_cast<int>(c.cpu_quota), 1, threads);
  // Round to the nearest core: a core at least half idle gets a thread. A core that other
  // processes keep mostly busy would hold the whole team back at every barrier (a 2-thread team
  // ran 3-9x slower than one thread with one or two busy processes on 2 cores).
  auto fitting = [&](double idle) { return std::clamp(static_cast<int>(std::floor(idle + 0.5)), 1, threads); };
  bool sampled = false;
  for (int look = 0; options.sample_ms > 0 && look < options.max_samples; ++look) {
    std::vector<Core> seen = cores;
    if (!sample_idle(seen, options.sample_ms)) break;
    double idle = 0;
    for (const Core& core : seen) idle += core.idle;  // in cores: hyper-threads share one
    if (!sampled || idle > c.idle_cores) c.idle_cores = idle;
    sampled = true;
    if (fitting(c.idle_cores) == threads) break;
  }
  if (sampled) threads = fitting(c.idle_cores);
  // A team size the user chose is the team, and the binding below follows it: OMP_NUM_THREADS=1
  // bound close used to pin every such process to core 0.
  if (const char* user = std::getenv("OMP_NUM_THREADS")) {
    int n = std::atoi(user);
    if (n >= 1) threads = n;
  }
  c.omp_num_threads = threads;
  // A team on every core stays bound close, one place per core: what ran fastest on a quiet
  // machine. A smaller team is left to the scheduler. Bound, it would start on the first cores,
  // where every other such Kiln process starts too: two 1-thread runs bound to core 0 made
  // 1044-1625 img/s each, unbound 1593-2434. Bound to the cores idlest at start it cannot leave
  // them when the load moves (and pinned load cannot move away from it); unbound it lost only
  // 3-4% against a bound thread whose core stayed free.
  if (threads != c.physical_cores) c.omp_proc_bind = "false";
  choose_spin(c);
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
  // GOMP_SPINCOUNT would override a wait policy the user chose (libgomp prefers it).
  auto user_owns = [](const std::string& k) { return k == "GOMP_SPINCOUNT" && std::getenv("OMP_WAIT_POLICY"); };
  bool missing = false;
  for (auto& [k, v] : c.env()) missing = missing || (!user_owns(k) && !std::getenv(k.c_str()));
  const bool restart = missing && !std::getenv("KILN_THREAD_CONFIG_APPLIED");
  if (restart) {
    // With OMP_PROC_BIND already set, the OpenMP runtime has bound this thread to the first
    // place, and both the config (which reads the affinity mask) and exec (which keeps it)
    // would see one CPU: OMP_NUM_THREADS=2 OMP_PROC_BIND=close OMP_PLACES=cores ran both
    // threads on core 0 of 2. The restarted process binds its team itself.
    unbind_current_thread();
    c = best_known_config(options);
  }
  for (auto& [k, v] : c.env()) {
    if (!user_owns(k) && !std::getenv(k.c_str())) setenv(k.c_str(), v.c_str(), 1);
  }
  if (restart) {
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
