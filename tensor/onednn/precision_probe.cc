#include "tensor/onednn/precision_probe.h"

#include <cpuid.h>
#include <fcntl.h>
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>

#include "base/files.h"
#include "tensor/onednn/isa.h"

namespace kiln::cpu {
namespace {

std::string cpu_brand() {
  unsigned regs[12] = {};
  if (__get_cpuid_max(0x80000000, nullptr) < 0x80000004) return "unknown";
  for (unsigned i = 0; i < 3; ++i) __get_cpuid(0x80000002 + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
  char text[49] = {};
  std::memcpy(text, regs, 48);
  std::string s;
  for (const char* p = text; *p; ++p) {
    if (*p < 0x20 || *p > 0x7e) continue;
    if (*p == ' ' && (s.empty() || s.back() == ' ')) continue;  // brands pad and double their spaces
    s += *p;
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s.empty() ? "unknown" : s.substr(0, 128);
}

// The CPUID bits behind bf16 speed, whatever the cap: isa.h folds them into one level, and the
// reason sentence needs to tell "no AMX" from "AMX capped off".
std::string bf16_flags() {
  unsigned a, b, c, d;
  std::string flags;
  if (__get_cpuid_max(0, nullptr) < 7) return "none";
  __cpuid_count(7, 0, a, b, c, d);
  bool avx512_core = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31));
  bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24);
  __cpuid_count(7, 1, a, b, c, d);
  bool avx512_bf16 = a & (1u << 5);
  auto add = [&](bool on, const char* name) {
    if (on) flags += flags.empty() ? name : std::string(" ") + name;
  };
  add(avx512_core, "avx512_core");
  add(avx512_bf16, "avx512_bf16");
  add(amx_tile, "amx_tile");
  add(amx_bf16, "amx_bf16");
  return flags.empty() ? "none" : flags;
}

bool has_flag(const ProbeKey& key, const std::string& flag) {
  std::string padded = " " + key.flags + " ";
  return padded.find(" " + flag + " ") != std::string::npos;
}

bool usable(double t) { return std::isfinite(t) && t > 0 && t <= 60; }
bool usable(const ProbeTimings& t) {
  return usable(t.matmul_f32) && usable(t.matmul_bf16) && usable(t.conv_f32) && usable(t.conv_bf16);
}

std::string fixed2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

void warn(const std::string& what) { std::fprintf(stderr, "kiln: %s\n", what.c_str()); }

// Reads the cache file for key; nullopt (after one warning, unless the file is simply absent)
// when there is nothing usable. Never reads more than the format allows, and never opens a
// FIFO or device in a way that could block.
std::optional<ProbeTimings> load_cached(const std::string& path, const ProbeKey& key) {
  const std::string again = "; measuring bf16 against f32 again";
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) warn("cannot read precision cache '" + path + "': " + std::strerror(errno) + again);
    return std::nullopt;
  }
  std::string bytes;
  std::string problem;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    problem = std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    problem = "not a regular file";
  } else if (st.st_size > static_cast<off_t>(kMaxProbeCacheBytes)) {
    problem = std::to_string(st.st_size) + " bytes, more than a cache file holds";
  } else {
    char buf[kMaxProbeCacheBytes + 1];
    size_t got = 0;
    while (got < sizeof buf) {
      ssize_t n = ::read(fd, buf + got, sizeof buf - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) problem = std::strerror(errno);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    bytes.assign(buf, got);  // a file that grew past the limit fails the parser's size check
  }
  ::close(fd);
  if (!problem.empty()) {
    warn("ignoring precision cache '" + path + "': " + problem + again);
    return std::nullopt;
  }
  ProbeRecord record;
  try {
    record = parse_probe_cache(bytes, path);
  } catch (const std::exception& e) {
    warn(std::string("ignoring ") + e.what() + again);
    return std::nullopt;
  }
  if (!(record.key == key)) {
    warn("ignoring precision cache '" + path + "': it was measured on another CPU or with other settings (" +
         record.key.cpu + ", ISA " + record.key.isa + ", " + std::to_string(record.key.threads) + " threads, oneDNN " +
         record.key.onednn + ")" + again);
    return std::nullopt;
  }
  return record.timings;
}

void store(const std::string& dir, const std::string& path, const ProbeRecord& record) {
  try {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw std::runtime_error("cannot create '" + dir + "': " + ec.message());
    base::write_file_atomically(path, serialize_probe_cache(record));
  } catch (const std::exception& e) {
    warn(std::string("cannot write the precision cache (") + e.what() + "); the choice holds for this process only");
  }
}

std::string memo_key(const std::string& path, const ProbeKey& k) {
  return path + "\n" + k.cpu + "\n" + k.flags + "\n" + k.onednn + "\n" + k.isa + "\n" + std::to_string(k.threads);
}

}  // namespace

std::string PrecisionChoice::describe() const {
  std::string s = policy + " (" + reason + "; " + key.cpu + ", flags " + key.flags + ", ISA " + key.isa + ", " +
                  std::to_string(key.threads) + (key.threads == 1 ? " thread" : " threads") + ", oneDNN " + key.onednn;
  if (ratio > 0) s += from_cache ? ", cached" : ", measured now";
  return s + ")";
}

ProbeKey current_probe_key() {
  ProbeKey k;
  k.cpu = cpu_brand();
  k.flags = bf16_flags();
  const dnnl_version_t* v = dnnl_version();
  k.onednn = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  k.isa = isa_name(effective_isa());
  k.threads = omp_get_max_threads();
  return k;
}

bool bf16_native(const ProbeKey& key) {
  try {
    return static_cast<int>(isa_from_name(key.isa)) >= static_cast<int>(Isa::avx512_core_bf16);
  } catch (const std::invalid_argument&) {
    return false;
  }
}

PrecisionChoice decide_precision(const ProbeKey& key, const std::optional<ProbeTimings>& timings) {
  PrecisionChoice c;
  c.key = key;
  if (!bf16_native(key)) {
    c.reason = has_flag(key, "avx512_bf16") || has_flag(key, "amx_bf16")
                   ? "bf16 unsupported at this ISA cap (" + key.isa + "): the CPU has native bf16, but oneDNN is capped below it"
                   : "bf16 unsupported on this CPU (" + key.isa + ", no AVX512-BF16 or AMX): oneDNN would emulate it, slower than f32";
    return c;
  }
  if (!timings || !usable(*timings)) {
    c.reason = "bf16 not chosen: the probe gave no usable timings";
    return c;
  }
  c.matmul_ratio = timings->matmul_f32 / timings->matmul_bf16;
  c.conv_ratio = timings->conv_f32 / timings->conv_bf16;
  c.ratio = std::sqrt(c.matmul_ratio * c.conv_ratio);
  std::string measured = "bf16 " + fixed2(c.ratio) + "x f32 on this CPU (matmul " + fixed2(c.matmul_ratio) +
                         "x, conv " + fixed2(c.conv_ratio) + "x)";
  bool amx = key.isa == isa_name(Isa::amx);
  std::string no_amx = has_flag(key, "amx_bf16") ? "AMX capped off" : "no AMX";
  if (c.ratio > kMinBf16Speedup) {
    c.policy = "mixed_bfloat16";
    c.reason = measured + (amx ? ": AMX tiles" : ": " + no_amx + ", but its AVX512-BF16 dot products outrun f32 FMA");
  } else if (c.ratio > 1) {
    c.reason = measured + ": too small a gain to pay for the casts mixed precision adds";
  } else {
    c.reason = measured + (amx ? ": slower even with AMX tiles" : ": " + no_amx + ", and AVX512-BF16 runs slower than f32 FMA here");
  }
  return c;
}

std::string default_cache_dir() {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  if (std::string d = env("KILN_CACHE_DIR"); !d.empty()) return d;
  if (std::string d = env("XDG_CACHE_HOME"); !d.empty() && d[0] == '/') return d + "/kiln";  // relative ones are invalid
  if (std::string d = env("HOME"); !d.empty()) return d + "/.cache/kiln";
  return "";
}

std::string probe_cache_path(const std::string& dir, const ProbeKey& key) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a: the name only spreads keys; the file holds the key itself
  for (char ch : memo_key("", key)) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
  h ^= h >> 33;  // FNV-1a barely changes the high bits for a change in the last byte
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  char name[48];
  std::snprintf(name, sizeof name, "precision-%016llx.txt", static_cast<unsigned long long>(h));
  return dir + "/" + name;
}

PrecisionChoice mixed_precision_choice(const ProbeOptions& options) {
  ProbeKey key = options.key ? *options.key : current_probe_key();
  if (!bf16_native(key)) return decide_precision(key, std::nullopt);  // nothing to measure
  std::string dir = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
  std::string path = dir.empty() ? "" : probe_cache_path(dir, key);
  // Only real measurements of the real key are remembered; injected ones are tests.
  bool remember = !options.measure && !options.key;
  static std::mutex mu;
  static std::map<std::string, PrecisionChoice>* memo = new std::map<std::string, PrecisionChoice>();
  std::lock_guard<std::mutex> lock(mu);  // one probe at a time: two would time each other
  if (remember) {
    auto it = memo->find(memo_key(path, key));
    if (it != memo->end()) {
      PrecisionChoice c = it->second;
      c.from_cache = true;
      return c;
    }
  }
  std::optional<ProbeTimings> timings;
  if (!path.empty()) timings = load_cached(path, key);
  bool cached = timings.has_value();
  if (!cached) {
    try {
      timings = options.measure ? options.measure() : measure_precision();
    } catch (const std::exception& e) {
      PrecisionChoice c = decide_precision(key, std::nullopt);
      c.reason = std::string("bf16 not chosen: the probe failed (") + e.what() + ")";
      return c;
    }
    if (!path.empty() && usable(*timings)) store(dir, path, {key, *timings});
  }
  PrecisionChoice c = decide_precision(key, timings);
  c.from_cache = cached;
  if (remember) (*memo)[memo_key(path, key)] = c;
  return c;
}

}  // namespace kiln::cpu
