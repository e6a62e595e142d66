#include "tensor/onednn/profiler.h"

#include <oneapi/dnnl/dnnl_debug.h>
#include <oneapi/dnnl/dnnl_types.h>

#include <algorithm>

namespace kiln::onednn::profiler {
namespace detail {
std::atomic<bool> on{false};
thread_local int depth = 0;
}  // namespace detail

namespace {

// One slot per oneDNN primitive kind (2.6 has fewer than 32), the last for Kiln's kernels.
// Relaxed atomics: the training loop runs primitives on one thread, so they never contend,
// and several predict() threads still add up correctly.
constexpr int kSlots = 33;
constexpr int kKernelSlot = kSlots - 1;
struct Slot {
  std::atomic<uint64_t> calls{0};
  std::atomic<int64_t> ns{0};
};
Slot slots[kSlots];

void add(int slot, std::chrono::steady_clock::duration elapsed) {
  slots[slot].calls.fetch_add(1, std::memory_order_relaxed);
  slots[slot].ns.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count(),
                           std::memory_order_relaxed);
}

}  // namespace

void detail::add_kernel(std::chrono::steady_clock::duration elapsed) { add(kKernelSlot, elapsed); }

void add_primitive(int dnnl_kind, std::chrono::steady_clock::duration elapsed) {
  add(dnnl_kind >= 0 && dnnl_kind < kKernelSlot ? dnnl_kind : 0, elapsed);
}

void set_enabled(bool enabled) { detail::on.store(enabled, std::memory_order_relaxed); }

void reset() {
  for (Slot& s : slots) {
    s.calls.store(0, std::memory_order_relaxed);
    s.ns.store(0, std::memory_order_relaxed);
  }
}

Totals totals() {
  Totals t;
  for (int i = 0; i < kSlots; ++i) {
    uint64_t calls = slots[i].calls.load(std::memory_order_relaxed);
    if (calls == 0) continue;
    double ms = slots[i].ns.load(std::memory_order_relaxed) * 1e-6;
    if (i == kKernelSlot) {
      t.kernel_calls = calls;
      t.kernel_ms = ms;
    } else {
      t.primitive_calls += calls;
      t.primitive_ms += ms;
    }
    std::string kind = i == kKernelSlot ? "kiln kernel" : dnnl_prim_kind2str(static_cast<dnnl_primitive_kind_t>(i));
    t.by_kind.push_back({kind, calls, ms});
  }
  std::stable_sort(t.by_kind.begin(), t.by_kind.end() - (t.kernel_calls ? 1 : 0),
                   [](const KindTotals& a, const KindTotals& b) { return a.ms > b.ms; });
  return t;
}

}  // namespace kiln::onednn::profiler
