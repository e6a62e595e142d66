#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

// Opt-in, process-wide timing of the compute Kiln runs: every oneDNN primitive (timed in
// onednn::execute, which every primitive and reorder goes through) and Kiln's own kernels
// (loops that do an op's arithmetic themselves, timed by KernelScope). A training step's wall
// time minus both is the framework's overhead: op dispatch, the tape, allocation, cache keys.
// Off, it costs one relaxed atomic load per primitive or kernel call.
//
// Checked against oneDNN's own timer (2026-12-01, Intel Xeon under KVM, AVX512-BF16, 1 thread):
// DNNL_VERBOSE=1 (oneDNN 2.6's name for v3's profile_exec) prints each execution's time;
// summed over the same calls of a profiled kiln_train_bench pass (--steps 0 --warmup 2
// --profile_steps 20, ResNet-18 3), this profiler read MLP +3.2% and +9.5%, Keras CNN +1.3%
// and +4.7%, ResNet-18 +0.3% above oneDNN's sum: ~2-4 us per call, which is oneDNN's dispatch
// (argument checks, execution context) and, in that run, its verbose printing, both inside
// dnnl_primitive_execute and outside its own timer.
namespace kiln::onednn::profiler {

namespace detail {
extern std::atomic<bool> on;
// Timed regions open on this thread: a kernel that runs a primitive (or another kernel) is
// counted once, by the outermost region.
extern thread_local int depth;
void add_kernel(std::chrono::steady_clock::duration elapsed);
}  // namespace detail

inline bool enabled() { return detail::on.load(std::memory_order_relaxed); }
void set_enabled(bool enabled);
// Zeroes every count and time.
void reset();

struct KindTotals {
  std::string kind;  // oneDNN's primitive kind ("matmul", "convolution", ...), or "kiln kernel"
  uint64_t calls = 0;
  double ms = 0;
};
struct Totals {
  uint64_t primitive_calls = 0;
  double primitive_ms = 0;  // oneDNN primitives, reorders included
  uint64_t kernel_calls = 0;
  double kernel_ms = 0;     // Kiln's own kernels
  std::vector<KindTotals> by_kind;  // primitive kinds that ran, most time first; then Kiln's kernels
  double compute_ms() const { return primitive_ms + kernel_ms; }
};
Totals totals();

// Called by onednn::execute around one primitive's execution (and its stream wait).
void add_primitive(int dnnl_kind, std::chrono::steady_clock::duration elapsed);

// A timed region: timing() only when the profiler is on and no other region
// is open on this thread.
class Region {
 public:
  Region() {
    if (!enabled()) return;
    open_ = true;
    if (detail::depth++ == 0) start_ = std::chrono::steady_clock::now();
  }
  ~Region() {
    if (open_) detail::depth--;
  }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  bool timing() const { return start_ != std::chrono::steady_clock::time_point{}; }
  std::chrono::steady_clock::duration elapsed() const { return std::chrono::steady_clock::now() - start_; }

 private:
  std::chrono::steady_clock::time_point start_{};
  bool open_ = false;
};

// Times a Kiln kernel while the profiler is on: construct it just before the loop.
class KernelScope {
 public:
  KernelScope() = default;
  ~KernelScope() {
    if (region_.timing()) detail::add_kernel(region_.elapsed());
  }
  KernelScope(const KernelScope&) = delete;
  KernelScope& operator=(const KernelScope&) = delete;

 private:
  Region region_;
};

}  // namespace kiln::onednn::profiler
