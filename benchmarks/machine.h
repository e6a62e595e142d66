#pragma once
#include <string>

namespace kiln::bench {

// "CPU: <model name>; AVX-512: yes, AVX512-VNNI: yes, AVX512-BF16: yes, AMX: no; threads: 2;
// date: 2026-12-01 01:00 UTC": the line every table of measured figures starts with
// (docs/architecture.md, Figures). Flags come from /proc/cpuinfo, so they are what the kernel exposes
// (a VM may hide some the silicon has).
std::string machine_header(int threads);

}  // namespace kiln::bench
