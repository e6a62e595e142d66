#include "dist/world.h"

#include <mpi.h>

#include <cstdlib>
#include <mutex>

#include "dist/error.h"

namespace kiln::dist {
namespace {
std::mutex mu;
bool started_here = false;

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

int rank() {
  if (!is_up()) return env_int("OMPI_COMM_WORLD_RANK", 0);
  int r = 0;
  check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &r), "MPI_Comm_rank");
  return r;
}

int world_size() {
  if (!is_up()) return env_int("OMPI_COMM_WORLD_SIZE", 1);
  int n = 1;
  check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &n), "MPI_Comm_size");
  return n;
}

// Open MPI tells each rank its place on the host; elsewhere every rank counts as its own
// host's first (a collective split here could deadlock when only one rank asks).
int local_rank() { return env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0); }

int local_size() { return env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1); }

void barrier() {
  if (!is_up()) return;
  check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

}  // namespace kiln::dist
