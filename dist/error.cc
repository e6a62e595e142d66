#include "dist/error.h"

#include <mpi.h>

namespace kiln::dist {

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
  int initialized = 0, finalized = 0, rank = -1;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  throw MpiError(std::string(call) + " failed on rank " + std::to_string(rank) + ": " +
                 (len > 0 ? std::string(text, len) : "MPI error code " + std::to_string(rc)));
}

}  // namespace kiln::dist
