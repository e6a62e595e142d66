#pragma once
// A setting, usually a thread_local in some .cc file, that a scope overrides and puts back
// when the scope ends: what tests and benchmarks use to force a path on one thread, and what
// the tape uses to say which gradients an op's backward must compute.
namespace kiln {

template <typename T>
class ScopedOverride {
 public:
  ScopedOverride(T& slot, T value) : slot_(slot), previous_(slot) { slot_ = value; }
  ~ScopedOverride() { slot_ = previous_; }
  ScopedOverride(const ScopedOverride&) = delete;
  ScopedOverride& operator=(const ScopedOverride&) = delete;

 private:
  T& slot_;
  T previous_;
};

}  // namespace kiln
