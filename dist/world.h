#pragma once
// The MPI world this process belongs to: a thin layer over Open MPI.
#include <string>

namespace kiln::dist {

// Starts MPI once per process (idempotent; later calls do nothing) and makes MPI errors on
// the world communicator come back as MpiError instead of aborting. A process that was not
// started by a launcher becomes a world of one.
void init();
// Ends MPI (idempotent; also run at exit when init() started it). No MPI call may follow.
void finalize();
bool initialized();

// Whether an MPI launcher (mpirun, srun with PMIx) started this process.
bool under_launcher();

int rank();        // in the world (0 when this process is not distributed)
int world_size();  // 1 when not distributed
int local_rank();  // among the ranks on this host
int local_size();

// The host a rank runs on (gathered once by init(); this host's name before it).
std::string host_name(int rank);

void barrier();

}  // namespace kiln::dist
