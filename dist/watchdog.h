#pragma once
// The collective watchdog: a blocking MPI call that does not complete within the deadline ends
// the job with a message naming the peers it waits for, instead of waiting forever. MPI itself
// never gives up on a peer that stopped answering (a partitioned network, a rank stuck outside
// MPI, a rank that skipped a collective): TCP retransmits for many minutes, and Open MPI's
// mpirun only notices a host it cannot reach on its own control connection.
#include <string>

namespace kiln::dist {

// Seconds a single blocking collective may take; 0 turns the watchdog off. The default is
// 600 (KILN_COLLECTIVE_TIMEOUT in the environment overrides it); fit sets it from
// FitOptions.distributed.collective_timeout. Throws std::invalid_argument for a negative or
// non-finite value.
void set_collective_timeout(double seconds);
double collective_timeout();

// Arms the watchdog for one blocking MPI call (one thread makes MPI calls at a time, so one
// watch at a time). When the deadline passes, the watchdog's thread prints
//   kiln dist: rank R of N failed: MPI_Allreduce did not complete within T s ...
// naming this rank's host and the peers' ranks and hosts, records it for fit's launcher, and
// ends this process with status 1; the launcher (mpirun, srun -K) then ends the others.
class CollectiveWatch {
 public:
  explicit CollectiveWatch(const char* call);
  ~CollectiveWatch();
  CollectiveWatch(const CollectiveWatch&) = delete;
  CollectiveWatch& operator=(const CollectiveWatch&) = delete;
};

// The message the watchdog ends the job with (for tests and the docs).
std::string collective_timeout_message(const std::string& call, double seconds);

}  // namespace kiln::dist
