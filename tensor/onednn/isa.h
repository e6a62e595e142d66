#pragma once
#include <string>
#include <vector>

namespace kiln::cpu {

// The oneDNN ISA levels Kiln exposes, lowest to highest.
enum class Isa { sse41, avx2, avx512_core, avx512_core_vnni, avx512_core_bf16, amx, all };

const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);  // "avx2", "avx512", "avx512_core", "avx512_bf16", "amx", ...

// What the hardware (and OS) supports, read from CPUID/XGETBV, independent of any cap.
Isa detected_isa();
bool isa_available(Isa isa);
// What oneDNN will dispatch to right now: min(detected, cap).
Isa effective_isa();

// Caps oneDNN's dispatch (wraps dnnl::set_max_cpu_isa). oneDNN accepts this only before it
// generates its first kernel in the process; later calls throw std::runtime_error saying so.
// The DNNL_MAX_CPU_ISA environment variable has the same effect for a whole process.
void set_max_isa(Isa isa);

struct ImplRecord {
  std::string op;    // Kiln op, e.g. "matmul"
  std::string impl;  // oneDNN implementation, e.g. "brg:avx512_core_bf16"
  std::string key;   // shapes/dtypes the primitive was created for
};
// Every primitive creation appends one record (creation is rare: primitives are cached).
std::vector<ImplRecord> impl_log();
void clear_impl_log();
// Implementation chosen by the most recently created primitive of op ("" if none).
std::string last_impl(const std::string& op);
// When on, each primitive creation is also printed to stderr: "kiln: matmul -> brg:avx512_core".
void set_impl_logging(bool on);
void record_impl(const std::string& op, const std::string& impl, const std::string& key);

// Describes detected/effective ISA and oneDNN version in one line.
std::string isa_report();

}  // namespace kiln::cpu
