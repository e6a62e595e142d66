#include "tensor/onednn/isa.h"

#include <cpuid.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>

namespace kiln::cpu {
namespace {

struct CpuidBits {
  bool avx2 = false, avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false, amx_tile = false, amx_bf16 = false, amx_int8 = false;
  bool os_avx = false, os_avx512 = false, os_amx = false;
};

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuidBits read_cpuid() {
  CpuidBits b;
  unsigned a, bx, c, d;
  if (!__get_cpuid(1, &a, &bx, &c, &d)) return b;
  bool osxsave = c & (1u << 27);
  if (osxsave) {
    uint64_t xcr0 = xgetbv0();
    b.os_avx = (xcr0 & 0x6) == 0x6;
    b.os_avx512 = (xcr0 & 0xe6) == 0xe6;
    b.os_amx = (xcr0 & 0x60000) == 0x60000;
  }
  if (__get_cpuid_max(0, nullptr) < 7) return b;
  __cpuid_count(7, 0, a, bx, c, d);
  b.avx2 = bx & (1u << 5);
  b.avx512f = bx & (1u << 16);
  b.avx512dq = bx & (1u << 17);
  b.avx512bw = bx & (1u << 30);
  b.avx512vl = bx & (1u << 31);
  b.avx512vnni = c & (1u << 11);
  b.amx_bf16 = d & (1u << 22);
  b.amx_tile = d & (1u << 24);
  b.amx_int8 = d & (1u << 25);
  __cpuid_count(7, 1, a, bx, c, d);
  b.avx512bf16 = a & (1u << 5);
  return b;
}

Isa from_dnnl(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return Isa::sse41;
    case dnnl::cpu_isa::avx:
    case dnnl::cpu_isa::avx2:
    case dnnl::cpu_isa::avx2_vnni: return Isa::avx2;
    case dnnl::cpu_isa::avx512_core: return Isa::avx512_core;
    case dnnl::cpu_isa::avx512_core_vnni: return Isa::avx512_core_vnni;
    case dnnl::cpu_isa::avx512_core_bf16: return Isa::avx512_core_bf16;
    case dnnl::cpu_isa::avx512_core_amx: return Isa::amx;
    case dnnl::cpu_isa::all: return Isa::all;
    default: return Isa::sse41;
  }
}

dnnl::cpu_isa to_dnnl(Isa isa) {
  switch (isa) {
    case Isa::sse41: return dnnl::cpu_isa::sse41;
    case Isa::avx2: return dnnl::cpu_isa::avx2;
    case Isa::avx512_core: return dnnl::cpu_isa::avx512_core;
    case Isa::avx512_core_vnni: return dnnl::cpu_isa::avx512_core_vnni;
    case Isa::avx512_core_bf16: return dnnl::cpu_isa::avx512_core_bf16;
    case Isa::amx: return dnnl::cpu_isa::avx512_core_amx;
    case Isa::all: return dnnl::cpu_isa::all;
  }
  return dnnl::cpu_isa::all;
}

struct ImplLog {
  std::mutex mu;
  std::vector<ImplRecord> records;
  bool print = std::getenv("KILN_VERBOSE_IMPL") != nullptr;
};
ImplLog& log_state() {
  static ImplLog* log = new ImplLog();
  return *log;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::sse41: return "sse41";
    case Isa::avx2: return "avx2";
    case Isa::avx512_core: return "avx512_core";
    case Isa::avx512_core_vnni: return "avx512_core_vnni";
    case Isa::avx512_core_bf16: return "avx512_core_bf16";
    case Isa::amx: return "avx512_core_amx";
    case Isa::all: return "all";
  }
  return "unknown";
}

Isa isa_from_name(const std::string& n) {
  if (n == "sse41") return Isa::sse41;
  if (n == "avx2") return Isa::avx2;
  if (n == "avx512" || n == "avx512_core") return Isa::avx512_core;
  if (n == "avx512_vnni" || n == "avx512_core_vnni") return Isa::avx512_core_vnni;
  if (n == "avx512_bf16" || n == "avx512_core_bf16") return Isa::avx512_core_bf16;
  if (n == "amx" || n == "avx512_core_amx") return Isa::amx;
  if (n == "all") return Isa::all;
  throw std::invalid_argument("unknown ISA name '" + n +
                              "' (expected avx2, avx512_core, avx512_core_bf16, amx or all)");
}

Isa detected_isa() {
  static const Isa detected = [] {
    CpuidBits b = read_cpuid();
    bool avx512_core = b.os_avx512 && b.avx512f && b.avx512bw && b.avx512vl && b.avx512dq;
    if (avx512_core && b.avx512bf16 && b.os_amx && b.amx_tile && b.amx_bf16 && b.amx_int8)
      return Isa::amx;
    if (avx512_core && b.avx512bf16 && b.avx512vnni) return Isa::avx512_core_bf16;
    if (avx512_core && b.avx512vnni) return Isa::avx512_core_vnni;
    if (avx512_core) return Isa::avx512_core;
    if (b.os_avx && b.avx2) return Isa::avx2;
    return Isa::sse41;
  }();
  return detected;
}

bool isa_available(Isa isa) { return isa == Isa::all || static_cast<int>(isa) <= static_cast<int>(detected_isa()); }

Isa effective_isa() { return from_dnnl(dnnl::get_effective_cpu_isa()); }

void set_max_isa(Isa isa) {
  dnnl::status st = dnnl::set_max_cpu_isa(to_dnnl(isa));
  if (st != dnnl::status::success) {
    throw std::runtime_error(std::string("set_max_isa(") + isa_name(isa) +
                             "): oneDNN refused; the ISA cap can only be set once per process, "
                             "before the first primitive is created (or use DNNL_MAX_CPU_ISA)");
  }
}

std::vector<ImplRecord> impl_log() {
  std::lock_guard<std::mutex> lock(log_state().mu);
  return log_state().records;
}

void clear_impl_log() {
  std::lock_guard<std::mutex> lock(log_state().mu);
  log_state().records.clear();
}

std::string last_impl(const std::string& op) {
  std::lock_guard<std::mutex> lock(log_state().mu);
  auto& r = log_state().records;
  for (auto it = r.rbegin(); it != r.rend(); ++it) {
    if (it->op == op) return it->impl;
  }
  return "";
}

void set_impl_logging(bool on) { log_state().print = on; }

void record_impl(const std::string& op, const std::string& impl, const std::string& key) {
  std::lock_guard<std::mutex> lock(log_state().mu);
  log_state().records.push_back({op, impl, key});
  if (log_state().print) std::fprintf(stderr, "kiln: %s -> %s\n", op.c_str(), impl.c_str());
}

std::string isa_report() {
  const dnnl_version_t* v = dnnl_version();
  std::string s = "detected ISA: ";
  s += isa_name(detected_isa());
  s += ", effective ISA: ";
  s += isa_name(effective_isa());
  s += ", AMX: ";
  s += isa_available(Isa::amx) ? "available" : "unavailable on this CPU";
  s += ", oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
       std::to_string(v->patch);
  return s;
}

}  // namespace kiln::cpu
