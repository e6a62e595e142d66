#include "dist/collectives.h"

#include <mpi.h>

#include <climits>
#include <mutex>
#include <stdexcept>

#include "dist/error.h"
#include "dist/watchdog.h"
#include "dist/world.h"
#include "tensor/bf16.h"

namespace kiln::dist {
namespace {

// Under a launcher the first collective starts MPI (a program need not call init() itself);
// outside one, collectives act on a world of one.
bool active() {
  if (!initialized() && under_launcher()) init();
  return initialized() && world_size() > 1;
}

// MPI has no bf16 type: 2-byte elements with a user sum op that adds in f32.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const bf16* a = static_cast<const bf16*>(in);
  bf16* b = static_cast<bf16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = bf16(float(a[i]) + float(b[i]));
}

MPI_Op bf16_sum_op() {
  static std::once_flag once;
  static MPI_Op op;
  std::call_once(once, [] { check_mpi(MPI_Op_create(&bf16_sum, /*commute=*/1, &op), "MPI_Op_create"); });
  return op;
}

int count_of(int64_t n, const char* call) {
  if (n > INT_MAX) throw std::invalid_argument(std::string(call) + ": " + std::to_string(n) + " elements exceed MPI's int count");
  return static_cast<int>(n);
}

void check_payload(const Tensor& t, const char* call) {
  if (!t.defined()) throw std::invalid_argument(std::string(call) + ": undefined tensor");
  if (!t.is_contiguous()) throw std::invalid_argument(std::string(call) + ": tensor " + t.describe() + " is not contiguous");
}

}  // namespace

void broadcast(const Tensor& t, int root) {
  check_payload(t, "dist::broadcast");
  if (!active() || t.nbytes() == 0) return;
  // Bytes, in chunks under INT_MAX.
  char* p = static_cast<char*>(t.raw_data());
  for (size_t done = 0; done < t.nbytes();) {
    size_t chunk = std::min<size_t>(t.nbytes() - done, size_t(1) << 30);
    CollectiveWatch watch("MPI_Bcast");
    check_mpi(MPI_Bcast(p + done, static_cast<int>(chunk), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    done += chunk;
  }
  t.bump_version();
}

void allreduce(const Tensor& t, ReduceOp op) {
  check_payload(t, "dist::allreduce");
  if (t.dtype() != DType::f32 && t.dtype() != DType::bf16) {
    throw std::invalid_argument("dist::allreduce: f32 or bf16 tensors only, got " + t.describe());
  }
  if (!active() || t.numel() == 0) return;
  int n = count_of(t.numel(), "dist::allreduce");
  int size = world_size();
  CollectiveWatch watch("MPI_Allreduce");
  if (t.dtype() == DType::f32) {
    float* p = t.data<float>();
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    if (op == ReduceOp::mean) {
      for (int i = 0; i < n; ++i) p[i] /= size;
    }
  } else {
    bf16* p = t.data<bf16>();
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_UINT16_T, bf16_sum_op(), MPI_COMM_WORLD), "MPI_Allreduce");
    if (op == ReduceOp::mean) {
      for (int i = 0; i < n; ++i) p[i] = bf16(float(p[i]) / size);
    }
  }
  t.bump_version();
}

std::vector<double> allgather(double value) {
  if (!active()) return {value};
  std::vector<double> out(world_size());
  CollectiveWatch watch("MPI_Allgather");
  check_mpi(MPI_Allgather(&value, 1, MPI_DOUBLE, out.data(), 1, MPI_DOUBLE, MPI_COMM_WORLD), "MPI_Allgather");
  return out;
}

std::vector<int64_t> allgather(int64_t value) {
  if (!active()) return {value};
  std::vector<int64_t> out(world_size());
  CollectiveWatch watch("MPI_Allgather");
  check_mpi(MPI_Allgather(&value, 1, MPI_INT64_T, out.data(), 1, MPI_INT64_T, MPI_COMM_WORLD), "MPI_Allgather");
  return out;
}

Request iallreduce_sum(void* data, int64_t n, bool bf16_payload) {
  Request r;
  if (!active() || n == 0) return r;
  auto* req = new MPI_Request(MPI_REQUEST_NULL);
  int rc = MPI_Iallreduce(MPI_IN_PLACE, data, count_of(n, "dist::iallreduce_sum"),
                          bf16_payload ? MPI_UINT16_T : MPI_FLOAT, bf16_payload ? bf16_sum_op() : MPI_SUM,
                          MPI_COMM_WORLD, req);
  if (rc != MPI_SUCCESS) {
    delete req;
    check_mpi(rc, "MPI_Iallreduce");
  }
  r.handle = req;
  return r;
}

bool test(Request& r) {
  if (!r.handle) return true;
  auto* req = static_cast<MPI_Request*>(r.handle);
  int done = 0;
  check_mpi(MPI_Test(req, &done, MPI_STATUS_IGNORE), "MPI_Test");
  if (done) {
    delete req;
    r.handle = nullptr;
  }
  return done;
}

void wait(Request& r) {
  if (!r.handle) return;
  auto* req = static_cast<MPI_Request*>(r.handle);
  int rc;
  {
    CollectiveWatch watch("MPI_Wait (a gradient allreduce)");
    rc = MPI_Wait(req, MPI_STATUS_IGNORE);
  }
  delete req;
  r.handle = nullptr;
  check_mpi(rc, "MPI_Wait");
}

}  // namespace kiln::dist
