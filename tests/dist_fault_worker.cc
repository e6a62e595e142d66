// A tiny data-parallel fit for tests/dist_fault_test:
//   dist_fault_worker throw|kill STAMP   fit(num_processes=2) in which rank 1 throws, or is
//                                        killed with SIGKILL, at step 3 of epoch 1 (it first
//                                        writes the time to STAMP)
//   dist_fault_worker stall STAMP        fit(num_processes=2) with collective_timeout = 1 s in
//                                        which rank 1 stops (sleeps 60 s, outside MPI) at step 3
//                                        of epoch 1: rank 0's watchdog ends the job
//   dist_fault_worker world              fit under the caller's own mpirun; each rank prints
//                                        its final loss
#include <signal.h>
#include <unistd.h>
#include <time.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "dist/dist.h"
#include "kiln.h"
#include "tests/blobs.h"

namespace {
using namespace kiln;
using namespace kiln::nn;

class FaultAt : public Callback {
 public:
  FaultAt(std::string mode, std::string stamp) : mode_(std::move(mode)), stamp_(std::move(stamp)) {}
  void on_train_step_end(Trainer& t, const BatchOutput&) override {
    if (dist::rank() != 1 || t.step_in_epoch() != 3) return;
    timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    std::ofstream(stamp_) << (now.tv_sec * 1000000000LL + now.tv_nsec);
    if (mode_ == "kill") raise(SIGKILL);
    if (mode_ == "stall") {
      sleep(60);
      return;
    }
    throw std::runtime_error("injected failure at step 3");
  }

 private:
  std::string mode_, stamp_;
};
}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  std::string stamp = argc > 2 ? argv[2] : "/dev/null";
  try {
    set_global_seed(3);
    Sequential model({Dense(16, "relu", {}, "f_d1"), Dense(3, "", {}, "f_d2")}, "fault");
    model.build({2});
    model.compile(optim::SGD(0.05f), SparseCategoricalCrossentropy(true));
    data::Dataset train = kiln::testing::blobs(2000, 1).batch(16);
    FitOptions o{.epochs = 2, .verbose = 0, .num_processes = 2};
    if (mode == "throw" || mode == "kill" || mode == "stall") o.callbacks = {std::make_shared<FaultAt>(mode, stamp)};
    if (mode == "stall") o.distributed.collective_timeout = 1;
    History h = model.fit(train, o);
    std::printf("rank %d of %d: final loss %.9g\n", dist::rank(), dist::world_size(), h.history["loss"].back());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_fault_worker: %s\n", e.what());
    return 1;
  }
  return 0;
}
