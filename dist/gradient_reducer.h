#pragma once
#include <cstdint>
#include <vector>

#include "autograd/gradient_tape.h"
#include "autograd/variable.h"
#include "dist/collectives.h"
#include "tensor/tensor.h"

namespace kiln::dist {

struct ReducerOptions {
  // Bucket size; gradients are bucketed in reverse order of the variables (the order backward
  // produces them), as PyTorch DDP does.
  int64_t bucket_bytes = int64_t(25) << 20;
  // Communicate in bf16 (half the bytes); each addition is done in f32.
  bool bf16_communication = false;
  // In a world of one, hand the gradients back untouched (no buckets, no copies), so the
  // distributed path costs nothing at N = 1. Off only to test the buckets without peers.
  bool pass_through_alone = true;
};

// Averages gradients over the ranks while backward runs: each bucket's non-blocking allreduce
// starts as soon as the tape has produced the bucket's last gradient, and finish() waits for
// all of them. Each rank's gradients are weighted (by its number of examples), so ranks with
// unequal shares of a batch give exactly the gradient of the whole batch.
class GradientReducer {
 public:
  explicit GradientReducer(ReducerOptions options = {});
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Starts a step for the gradients of vars, this rank's weighted by `weight`, and hooks the
  // tape whose next gradient(loss, vars) produces them.
  void begin(const std::vector<Variable>& vars, double weight, GradientTape* tape);
  // The tape's hook: gradient of vars[index] is final.
  void on_gradient(size_t index, const Tensor& gradient);
  // sum_r(weight_r * local_r) / sum_r(weight_r) for every variable, once all buckets are in.
  // A variable whose local gradient is undefined (unconnected) stays undefined.
  std::vector<Tensor> finish(const std::vector<Tensor>& local);
  // Ends a step that will not finish (backward threw): waits for what is in flight.
  void abandon();

  // Measurements of the last step, for the scaling benchmark.
  int num_buckets() const { return static_cast<int>(buckets_.size()); }
  int buckets_started_during_backward() const { return started_in_backward_; }
  double wait_seconds() const { return wait_seconds_; }  // blocked in finish(): not hidden

 private:
  struct Bucket {
    std::vector<size_t> vars;     // indices into vars_
    std::vector<int64_t> offset;  // element offset of each in the buffer
    int64_t elements = 0;
    std::vector<float> f32;
    std::vector<uint16_t> bf16;
    size_t pending = 0;
    bool started = false;
    Request request;
  };
  void layout(const std::vector<Variable>& vars);
  void pack(size_t index, const Tensor& gradient);
  void start(Bucket& b);
  void progress();

  ReducerOptions options_;
  std::vector<Variable> vars_;
  std::vector<uint64_t> var_ids_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<size_t, size_t>> where_;  // var index -> (bucket, slot)
  std::vector<bool> packed_, defined_;
  std::vector<size_t> start_order_;
  float local_weight_ = 1, weight_buffer_ = 0;  // this rank's weight; the sum (in flight)
  Request weight_request_;
  bool in_step_ = false, in_backward_ = false, pass_through_ = false;
  int started_in_backward_ = 0;
  double wait_seconds_ = 0;
};

}  // namespace kiln::dist
