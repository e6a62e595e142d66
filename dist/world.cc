#include "dist/world.h"

#include <mpi.h>

#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "dist/error.h"
#include "dist/watchdog.h"

namespace kiln::dist {
namespace {
std::mutex mu;
bool started_here = false;
// Set once by init(), before any other thread could ask (the watchdog reads them while the
// training thread is inside MPI, where no MPI call may be made from elsewhere).
int world_rank = 0, world_n = 1;
std::vector<std::string> hosts;  // by rank

std::string this_host() {
  char name[256] = {0};
  if (gethostname(name, sizeof name - 1) != 0 || !name[0]) return "unknown";
  return name;
}

// Every rank's host name, for messages that name a peer.
void gather_host_names() {
  constexpr int width = 256;
  std::string mine = this_host();
  mine.resize(width - 1);
  std::vector<char> all(static_cast<size_t>(width) * world_n);
  check_mpi(MPI_Allgather(mine.c_str(), width, MPI_CHAR, all.data(), width, MPI_CHAR, MPI_COMM_WORLD),
            "MPI_Allgather");
  hosts.clear();
  for (int r = 0; r < world_n; ++r) hosts.emplace_back(all.data() + static_cast<size_t>(r) * width);
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

bool is_up() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}
}  // namespace

void init() {
  std::lock_guard<std::mutex> lock(mu);
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (fin) throw MpiError("dist::init: MPI was already finalized in this process; it cannot start again");
  if (init) return;
  int provided = 0;
  // Kiln calls MPI from one thread at a time (the training loop's).
  check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  check_mpi(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &world_n), "MPI_Comm_size");
  gather_host_names();
  started_here = true;
  std::atexit([] { finalize(); });
}

void finalize() {
  std::lock_guard<std::mutex> lock(mu);
  if (!started_here || !is_up()) return;
  MPI_Finalize();
}

bool initialized() { return is_up(); }

bool under_launcher() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("PMI_SIZE");
}

int rank() { return is_up() ? world_rank : env_int("OMPI_COMM_WORLD_RANK", 0); }

int world_size() { return is_up() ? world_n : env_int("OMPI_COMM_WORLD_SIZE", 1); }

std::string host_name(int r) {
  if (r >= 0 && r < static_cast<int>(hosts.size())) return hosts[r];
  return r == rank() ? this_host() : "unknown";
}

// Open MPI tells each rank its place on the host; elsewhere every rank counts as its own
// host's first (a collective split here could deadlock when only one rank asks).
int local_rank() { return env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0); }

int local_size() { return env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1); }

void barrier() {
  if (!is_up()) return;
  CollectiveWatch watch("MPI_Barrier");
  check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

}  // namespace kiln::dist
