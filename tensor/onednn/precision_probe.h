#pragma once
#include <functional>
#include <optional>
#include <string>

#include "tensor/onednn/precision_cache.h"

// Whether mixed bf16 precision pays on this machine, measured rather than assumed: bf16 runs
// at up to 2x-3x f32 on AMX Xeons and AMD Zen 4, and at about 0.6x on Xeons with AVX512-BF16
// but no AMX. nn::set_global_policy("auto") resolves through mixed_precision_choice().
namespace kiln::cpu {

// bf16 must beat f32 by this much in the probe: mixed precision also pays for casts and
// reorders the kernel probe does not see, so a marginal win in the probe is a loss in training.
inline constexpr double kMinBf16Speedup = 1.1;

struct PrecisionChoice {
  std::string policy = "float32";  // "mixed_bfloat16" or "float32"
  // bf16 speed over f32 (f32 time / bf16 time): geometric mean of matmul and conv, so neither
  // family outweighs the other by its size. 0 where nothing was measured.
  double ratio = 0, matmul_ratio = 0, conv_ratio = 0;
  std::string reason;       // one sentence: "bf16 0.59x f32 on this CPU: no AMX, ..."
  bool from_cache = false;  // the timings came from the cache file or an earlier call
  ProbeKey key;             // the machine and settings the choice holds for
  // "float32 (bf16 0.59x f32 on this CPU: ...; Intel(R) Xeon(R) ..., flags ..., 2 threads, ...)"
  std::string describe() const;
};

// The key of this process now: CPUID brand and flags, oneDNN's version, the effective ISA under
// any cap, and omp_get_max_threads(). Reading it creates no kernel, but oneDNN 2.6 refuses
// set_max_isa once the effective ISA has been asked for: set a cap before this.
ProbeKey current_probe_key();

// The decision alone, from a key and the timings (nullopt where bf16 was not measured). Pure:
// bf16 is chosen only where the key's ISA runs it natively and it measured faster than
// kMinBf16Speedup times f32.
PrecisionChoice decide_precision(const ProbeKey& key, const std::optional<ProbeTimings>& timings);

// Whether the key's ISA has native bf16 kernels; where it does not, nothing is measured.
bool bf16_native(const ProbeKey& key);

// Times a few training-shaped oneDNN matmuls and convolutions (forward, backward data, backward
// weights) in f32 and in bf16, alternately, best of several runs after a warm-up, on one OpenMP
// thread: tens of ms. Creating its kernels fixes oneDNN's ISA cap for the process, as any
// first kernel does.
ProbeTimings measure_precision();

// $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else $HOME/.cache/kiln; "" where none is set.
std::string default_cache_dir();
// The cache file for a key inside dir: one file per key, so machines sharing a home directory
// or runs with different thread counts do not overwrite each other's answer.
std::string probe_cache_path(const std::string& dir, const ProbeKey& key);

struct ProbeOptions {
  std::string cache_dir;                  // "" = default_cache_dir()
  std::function<ProbeTimings()> measure;  // empty = measure_precision()
  std::optional<ProbeKey> key;            // nullopt = current_probe_key()
};

// The choice for this machine: from the cache file when its key matches, else measured and
// written back atomically. A cache file that is unreadable, corrupt, truncated, of another
// version or another key is ignored with a one-line warning on stderr and measured again. With
// the default measure and key, answers are also kept for the rest of the process. Thread-safe.
PrecisionChoice mixed_precision_choice(const ProbeOptions& options = {});

}  // namespace kiln::cpu
