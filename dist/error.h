#pragma once
#include <stdexcept>
#include <string>

namespace kiln::dist {

// An MPI call failed: names the call, this rank and MPI's error string.
class MpiError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws MpiError for any rc other than MPI_SUCCESS (MPI_COMM_WORLD returns errors instead of
// aborting once init() has run).
void check_mpi(int rc, const char* call);

}  // namespace kiln::dist
