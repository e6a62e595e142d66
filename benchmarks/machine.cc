#include "benchmarks/machine.h"

#include <ctime>
#include <fstream>
#include <sstream>

namespace kiln::bench {
namespace {

// The value of the first "key : value" line of /proc/cpuinfo with this key.
std::string cpuinfo(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) != 0) continue;
    size_t colon = line.find(':');
    if (colon != std::string::npos) return line.substr(colon + (colon + 1 < line.size() ? 2 : 1));
  }
  return "";
}

}  // namespace

std::string machine_header(int threads) {
  std::string model = cpuinfo("model name");
  std::string flags = " " + cpuinfo("flags") + " ";
  auto has = [&](const char* f) { return flags.find(std::string(" ") + f + " ") != std::string::npos ? "yes" : "no"; };
  char date[64];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::ostringstream s;
  s << "CPU: " << (model.empty() ? "unknown" : model) << "; AVX-512: " << has("avx512f")
    << ", AVX512-VNNI: " << has("avx512_vnni") << ", AVX512-BF16: " << has("avx512_bf16")
    << ", AMX: " << has("amx_tile") << "; threads: " << threads << "; date: " << date;
  return s.str();
}

}  // namespace kiln::bench
