#include "dist/relaunch.h"

#include <fcntl.h>
#include <mpi.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "dist/pinning.h"
#include "dist/world.h"

namespace kiln::dist {
namespace {

std::atomic<int> launch_calls{0};
int saved_stdout = -1;

// Ranks start with stdout muted, before main(): the launcher has printed all of that already.
struct MuteRanks {
  MuteRanks() {
    if (!std::getenv("KILN_DIST_JOB")) return;
    std::fflush(stdout);
    saved_stdout = dup(STDOUT_FILENO);
    int null = open("/dev/null", O_WRONLY);
    if (saved_stdout >= 0 && null >= 0) dup2(null, STDOUT_FILENO);
    if (null >= 0) close(null);
  }
} mute_ranks;

std::string find_mpirun() {
  if (const char* m = std::getenv("KILN_MPIRUN")) return access(m, X_OK) == 0 ? m : "";
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string p = (dir.empty() ? "." : dir) + "/mpirun";
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::vector<std::string> own_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string a;
  while (std::getline(in, a, '\0')) args.push_back(a);
  return args;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::optional<RelaunchedJob> relaunched_job() {
  const char* dir = std::getenv("KILN_DIST_JOB");
  const char* call = std::getenv("KILN_DIST_CALL");
  if (!dir || !call) return std::nullopt;
  return RelaunchedJob{dir, std::atoi(call)};
}

int next_launch_call() { return ++launch_calls; }

void restart_launch_count() { launch_calls = 0; }

LaunchRole launch_role(int call) {
  std::optional<RelaunchedJob> job = relaunched_job();
  if (!job) return LaunchRole::launcher;
  return call == job->call ? LaunchRole::worker : LaunchRole::skip;
}

std::string make_job_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/kiln-dist-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    throw std::runtime_error("dist: cannot create a job folder from '" + pattern + "': " + std::strerror(errno));
  }
  return buf.data();
}

void remove_job_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void run_ranks(const std::string& what, int n, bool oversubscribe, const std::string& job_dir, int call) {
  std::string mpirun = find_mpirun();
  if (mpirun.empty()) {
    throw std::runtime_error(what + ": Open MPI's mpirun was not found on PATH; install the Debian package "
                                    "openmpi-bin (apt-get install openmpi-bin libopenmpi-dev)");
  }
  std::vector<std::vector<int>> cores = available_cores();
  std::vector<RankPlacement> places = place_ranks(n, oversubscribe, cores);
  std::vector<std::string> self = own_arguments();
  if (self.empty()) throw std::runtime_error(what + ": cannot read this program's arguments from /proc/self/cmdline");
  char exe[4096];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) throw std::runtime_error(what + ": cannot find this program's path (/proc/self/exe)");
  exe[len] = '\0';

  // argv[0] "mpirun", not its path: Open MPI takes an absolute argv[0] as --prefix, and
  // /bin/mpirun (PATH order on merged-/usr Debian) gives the prefix "/", which it refuses.
  std::vector<std::string> cmd = {"mpirun", "--bind-to", "none"};  // OpenMP pins each rank's threads
  if (oversubscribe) cmd.push_back("--oversubscribe");
  if (geteuid() == 0) cmd.push_back("--allow-run-as-root");
  // One app context per rank (MPMD), so each gets its own cores in its environment.
  for (int r = 0; r < n; ++r) {
    if (r > 0) cmd.push_back(":");
    cmd.insert(cmd.end(), {"-np", "1"});
    std::vector<std::pair<std::string, std::string>> env = places[r].env();
    env.emplace_back("KILN_DIST_JOB", job_dir);
    env.emplace_back("KILN_DIST_CALL", std::to_string(call));
    env.emplace_back("KILN_DIST_STDOUT_TTY", isatty(STDOUT_FILENO) ? "1" : "0");
    for (auto& [k, v] : env) cmd.insert(cmd.end(), {"-x", k + "=" + v});
    cmd.push_back(exe);
    cmd.insert(cmd.end(), self.begin() + 1, self.end());
  }
  std::vector<char*> argv;
  for (std::string& s : cmd) argv.push_back(s.data());
  argv.push_back(nullptr);
  // mpirun and the ranks may use every available core: this thread itself may be bound to
  // one (OpenMP binds the main thread), and children inherit that.
  cpu_set_t all;
  CPU_ZERO(&all);
  for (const auto& core : cores) {
    for (int c : core) CPU_SET(c, &all);
  }
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(what + ": cannot start '" + mpirun + "': " + std::strerror(errno));
  if (pid == 0) {  // only async-signal-safe calls until exec
    sched_setaffinity(0, sizeof all, &all);
    execv(mpirun.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(what + ": waiting for mpirun failed: " + std::strerror(errno));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && std::filesystem::exists(job_dir + "/done")) return;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    throw std::runtime_error(what + ": cannot run '" + mpirun + "' (install the Debian package openmpi-bin)");
  }
  // Failed: the ranks that said why, in rank order.
  std::string reasons;
  for (int r = 0; r < n; ++r) {
    std::string msg = read_file(job_dir + "/failed_rank_" + std::to_string(r));
    if (!msg.empty()) reasons += (reasons.empty() ? "" : "; ") + std::string("rank ") + std::to_string(r) + " failed: " + msg;
  }
  std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                      : "signal " + std::to_string(WTERMSIG(status));
  if (reasons.empty()) {
    reasons = "a rank ended without finishing (mpirun " + how + "; mpirun's report above names the rank and signal)";
  }
  throw std::runtime_error(what + " with " + std::to_string(n) + " processes: " + reasons);
}

void unmute_stdout() {
  if (saved_stdout < 0) return;
  std::fflush(stdout);
  dup2(saved_stdout, STDOUT_FILENO);
  close(saved_stdout);
  saved_stdout = -1;
}

void record_failure(const std::string& what) {
  int r = rank(), n = world_size();
  std::fprintf(stderr, "kiln dist: rank %d of %d failed: %s\n", r, n, what.c_str());
  if (std::optional<RelaunchedJob> job = relaunched_job()) {
    std::ofstream(job->dir + "/failed_rank_" + std::to_string(r)) << what;
  }
}

void abort_job(const std::string& what) {
  record_failure(what);
  std::fflush(nullptr);
  if (initialized()) MPI_Abort(MPI_COMM_WORLD, 1);
  _exit(1);
}

void end_rank() {
  barrier();  // rank 0 has written its results
  if (rank() == 0) {
    if (std::optional<RelaunchedJob> job = relaunched_job()) std::ofstream(job->dir + "/done") << "ok";
  }
  std::fflush(nullptr);
  finalize();
  _exit(0);
}

}  // namespace kiln::dist
