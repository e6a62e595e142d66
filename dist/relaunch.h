#pragma once
// How fit(num_processes) and dist::launch run this same program under mpirun: the launching
// process starts the ranks and waits; each rank runs main() again from the start, and the
// call that launched it (counted in program order) does the work and ends the rank.
#include <optional>
#include <string>

namespace kiln::dist {

// In a rank started this way: its job folder and which launch call is its work.
struct RelaunchedJob {
  std::string dir;
  int call = 0;
};
std::optional<RelaunchedJob> relaunched_job();

// Numbers the launch calls of this process in program order (1, 2, ...).
int next_launch_call();
// Counts launch calls from zero again. For programs whose ranks run only part of main()
// (a test runner relaunched with one test selected): call it at the same point in the
// launcher and in the ranks, e.g. at the start of each test.
void restart_launch_count();

// Launch points (fit, dist::launch): what this process does at the call it just counted.
enum class LaunchRole { launcher, worker, skip };
LaunchRole launch_role(int call);

// The launcher's side. A fresh job folder (removed by remove_job_dir).
std::string make_job_dir();
void remove_job_dir(const std::string& dir);
// Runs this program (same arguments) under mpirun with n ranks on this host, each pinned
// to its own cores, and waits for them. `what` names the caller in errors. Throws
// std::runtime_error when mpirun is missing (naming Debian's openmpi-bin) or when a rank
// failed: the rank and its message when it reported one, else mpirun's exit status.
void run_ranks(const std::string& what, int n, bool oversubscribe, const std::string& job_dir, int call);

// The ranks' side. Rank 0 shows its output from here on (ranks start with stdout muted, since
// the launcher already printed what main() prints before the launch call).
void unmute_stdout();
// Prints a failure ("kiln dist: rank R of N failed: ...") and records it for fit's launcher.
void record_failure(const std::string& what);
// Records a failure for the launcher to report, prints it, and ends the whole job.
[[noreturn]] void abort_job(const std::string& what);
// After the work: ends MPI and the rank, reporting success.
[[noreturn]] void end_rank();

}  // namespace kiln::dist
