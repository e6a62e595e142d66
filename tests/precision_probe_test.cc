// The mixed-precision probe (tensor/onednn/precision_probe.h): the decision from injected
// timings, the cache (hits, corrupt or foreign files, other keys), and "auto" in nn/policy.h.
// Every cache lives under TEST_TMPDIR; the real probe runs once, in the policy test.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "nn/policy.h"
#include "tensor/onednn/precision_probe.h"

namespace kiln::cpu {
namespace {

std::string temp_dir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(base ? base : "/tmp") + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Before any test: nothing here may read or write the user's real cache.
const bool kCacheInTemp = [] {
  setenv("KILN_CACHE_DIR", temp_dir("kiln-cache-default").c_str(), 1);
  return true;
}();

ProbeKey key_with(const std::string& isa, const std::string& flags, int threads = 2) {
  return {"Test CPU @ 1.00GHz", flags, "2.6.3", isa, threads};
}
const ProbeKey kBf16Key = key_with("avx512_core_bf16", "avx512_core avx512_bf16");
const ProbeKey kAmxKey = key_with("avx512_core_amx", "avx512_core avx512_bf16 amx_tile amx_bf16");

// bf16 at `ratio` times the f32 speed, in both families.
ProbeTimings timings_at(double ratio) { return {1e-3, 1e-3 / ratio, 2e-3, 2e-3 / ratio}; }

struct CountingProbe {
  int calls = 0;
  ProbeTimings result = timings_at(0.6);
  ProbeOptions options(const std::string& dir, const ProbeKey& key = kBf16Key) {
    return {dir, [this] {
              ++calls;
              return result;
            },
            key};
  }
};

void write(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }
std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(PrecisionDecision, PicksBf16OnlyWhereItMeasuredFaster) {
  for (double r : {0.25, 0.6, 0.99, 1.0, 1.05, kMinBf16Speedup, 1.12, 1.8, 3.0}) {
    for (const ProbeKey& key : {kBf16Key, kAmxKey}) {
      PrecisionChoice c = decide_precision(key, timings_at(r));
      SCOPED_TRACE(c.describe());
      EXPECT_NEAR(c.ratio, r, 1e-9);
      EXPECT_EQ(c.policy, r > kMinBf16Speedup ? "mixed_bfloat16" : "float32");
      EXPECT_FALSE(c.from_cache);
      EXPECT_EQ(c.reason.find('\n'), std::string::npos);
    }
  }
  PrecisionChoice slow = decide_precision(kBf16Key, timings_at(0.6));
  EXPECT_EQ(slow.reason.substr(0, 37), "bf16 0.60x f32 on this CPU (matmul 0.");
  EXPECT_NE(slow.reason.find("no AMX"), std::string::npos) << slow.reason;
  EXPECT_NE(decide_precision(kAmxKey, timings_at(1.8)).reason.find("AMX tiles"), std::string::npos);
  EXPECT_NE(decide_precision(kBf16Key, timings_at(1.05)).reason.find("too small a gain"), std::string::npos);
  ProbeKey amx_capped = kAmxKey;
  amx_capped.isa = "avx512_core_bf16";
  EXPECT_NE(decide_precision(amx_capped, timings_at(0.6)).reason.find("AMX capped off"), std::string::npos);
}

TEST(PrecisionDecision, FamiliesCountEquallyWhateverTheirSize) {
  PrecisionChoice c = decide_precision(kBf16Key, ProbeTimings{1e-3, 0.5e-3, 40e-3, 80e-3});  // 2x and 0.5x
  EXPECT_DOUBLE_EQ(c.matmul_ratio, 2.0);
  EXPECT_DOUBLE_EQ(c.conv_ratio, 0.5);
  EXPECT_NEAR(c.ratio, 1.0, 1e-12);
  EXPECT_EQ(c.policy, "float32");
}

TEST(PrecisionDecision, UnusableTimingsNeverChooseBf16) {
  for (ProbeTimings t : {ProbeTimings{}, ProbeTimings{1e-3, 0, 1e-3, 1e-3}, ProbeTimings{1e-3, -1, 1e-3, 1e-3},
                         ProbeTimings{1e-3, NAN, 1e-3, 1e-3}, ProbeTimings{1e-3, 1e-3, INFINITY, 1e-3}}) {
    PrecisionChoice c = decide_precision(kBf16Key, t);
    EXPECT_EQ(c.policy, "float32") << c.describe();
    EXPECT_EQ(c.ratio, 0);
  }
  EXPECT_EQ(decide_precision(kBf16Key, std::nullopt).policy, "float32");
}

TEST(PrecisionDecision, Bf16UnsupportedAtAnIsaCapIsFloat32WithoutMeasuring) {
  std::string dir = temp_dir("capped");
  CountingProbe probe;
  probe.result = timings_at(3.0);  // would win, if it were asked
  ProbeKey capped = key_with("avx512_core", "avx512_core avx512_bf16");
  PrecisionChoice c = mixed_precision_choice(probe.options(dir, capped));
  EXPECT_EQ(c.policy, "float32");
  EXPECT_NE(c.reason.find("bf16 unsupported at this ISA cap (avx512_core)"), std::string::npos) << c.reason;
  EXPECT_EQ(probe.calls, 0);
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  PrecisionChoice old_cpu = mixed_precision_choice(probe.options(dir, key_with("avx2", "none")));
  EXPECT_EQ(old_cpu.policy, "float32");
  EXPECT_NE(old_cpu.reason.find("bf16 unsupported on this CPU"), std::string::npos) << old_cpu.reason;
  EXPECT_EQ(probe.calls, 0);
}

TEST(PrecisionCache, HitReturnsTheSameDecisionWithoutProbing) {
  std::string dir = temp_dir("hit");
  CountingProbe probe;
  probe.result = timings_at(1.8);
  PrecisionChoice first = mixed_precision_choice(probe.options(dir));
  EXPECT_EQ(probe.calls, 1);
  EXPECT_FALSE(first.from_cache);
  EXPECT_EQ(first.policy, "mixed_bfloat16");
  EXPECT_TRUE(std::filesystem::exists(probe_cache_path(dir, kBf16Key)));
  PrecisionChoice second = mixed_precision_choice(probe.options(dir));
  EXPECT_EQ(probe.calls, 1);
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(second.policy, first.policy);
  EXPECT_EQ(second.reason, first.reason);
  EXPECT_NEAR(second.ratio, first.ratio, 1e-5);  // six significant digits in the file
  EXPECT_NE(second.describe().find("cached"), std::string::npos);
  // Nothing is left behind but the one cache file (no temporaries).
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);
}

TEST(PrecisionCache, CorruptTruncatedForeignOrHostileFilesAreIgnoredAndReprobed) {
  std::string dir = temp_dir("corrupt");
  CountingProbe probe;
  const std::string path = probe_cache_path(dir, kBf16Key);
  mixed_precision_choice(probe.options(dir));
  const std::string good = read(path);
  ASSERT_FALSE(good.empty());
  std::string flipped = good, other_version = good, stale_crc = good;
  flipped[good.find("matmul_bf16") + 14] ^= 0x01;  // a digit of a timing: the CRC no longer matches
  other_version.replace(other_version.find(" 1\n"), 3, " 2\n");
  stale_crc.replace(stale_crc.find("threads 2"), 9, "threads 3");
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"empty", ""},
      {"truncated", good.substr(0, good.size() / 2)},
      {"no final newline", good.substr(0, good.size() - 1)},
      {"flipped digit", flipped},
      {"other version", other_version},
      {"stale crc", stale_crc},
      {"binary", std::string("\x00\xff\x7f\x80kiln", 8)},
      {"huge", std::string(1 << 20, 'x')},
      {"trailing bytes", good + "x"},
  };
  for (const auto& [what, bytes] : bad) {
    SCOPED_TRACE(what);
    write(path, bytes);
    int before = probe.calls;
    testing::internal::CaptureStderr();
    PrecisionChoice c = mixed_precision_choice(probe.options(dir));
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(probe.calls, before + 1);
    EXPECT_FALSE(c.from_cache);
    EXPECT_EQ(c.policy, "float32");
    EXPECT_NEAR(c.ratio, 0.6, 1e-9);
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;  // one line
    EXPECT_NE(err.find(path), std::string::npos) << err;
    EXPECT_EQ(read(path), good);  // and the file is good again
  }
  // Not a regular file: a directory, and a FIFO that would block a plain open().
  for (bool fifo : {false, true}) {
    std::filesystem::remove_all(path);
    ASSERT_EQ(fifo ? ::mkfifo(path.c_str(), 0600) : ::mkdir(path.c_str(), 0700), 0);
    int before = probe.calls;
    testing::internal::CaptureStderr();
    PrecisionChoice c = mixed_precision_choice(probe.options(dir));
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(probe.calls, before + 1);
    EXPECT_EQ(c.policy, "float32");
    EXPECT_NE(err.find("not a regular file"), std::string::npos) << err;
  }
}

TEST(PrecisionCache, AnotherKeyReprobes) {
  std::string dir = temp_dir("keys");
  CountingProbe probe;
  mixed_precision_choice(probe.options(dir));
  ASSERT_EQ(probe.calls, 1);
  ProbeKey more_threads = kBf16Key, other_cpu = kBf16Key, other_onednn = kBf16Key;
  more_threads.threads = 4;
  other_cpu.cpu = "Other CPU";
  other_onednn.onednn = "3.0.0";
  for (const ProbeKey& k : {more_threads, other_cpu, other_onednn, kAmxKey}) {
    EXPECT_NE(probe_cache_path(dir, k), probe_cache_path(dir, kBf16Key));
    int before = probe.calls;
    PrecisionChoice c = mixed_precision_choice(probe.options(dir, k));
    EXPECT_EQ(probe.calls, before + 1) << k.cpu << " " << k.isa << " " << k.threads;
    EXPECT_FALSE(c.from_cache);
    EXPECT_EQ(c.key, k);
  }
  // A valid file for one key, found under another key's name, is not taken for it.
  std::filesystem::copy_file(probe_cache_path(dir, kBf16Key), probe_cache_path(dir, other_cpu),
                             std::filesystem::copy_options::overwrite_existing);
  int before = probe.calls;
  testing::internal::CaptureStderr();
  mixed_precision_choice(probe.options(dir, other_cpu));
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(probe.calls, before + 1);
  EXPECT_NE(err.find("another CPU or with other settings"), std::string::npos) << err;
}

TEST(PrecisionCache, AFailedProbeIsFloat32AndNotCached) {
  std::string dir = temp_dir("failed");
  ProbeOptions o{dir, []() -> ProbeTimings { throw std::runtime_error("no bf16 kernel"); }, kBf16Key};
  PrecisionChoice c = mixed_precision_choice(o);
  EXPECT_EQ(c.policy, "float32");
  EXPECT_NE(c.reason.find("no bf16 kernel"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

TEST(PrecisionCache, FormatRoundTripsAndIsStrict) {
  ProbeRecord r{kAmxKey, {1.5e-3, 2.5e-4, 3.25e-3, 1e-3}};
  std::string bytes = serialize_probe_cache(r);
  ProbeRecord back = parse_probe_cache(bytes, "x.txt");
  EXPECT_EQ(back.key, r.key);
  EXPECT_EQ(serialize_probe_cache(back), bytes);
  auto rejects = [&](std::string from, std::string to) {
    std::string b = bytes;
    size_t at = b.find(from);
    if (at == std::string::npos) return ::testing::AssertionFailure() << "no '" << from << "'";
    b.replace(at, from.size(), to);
    // A fresh CRC, so that the field itself is what is judged.
    std::string body = b.substr(0, b.rfind("crc "));
    char crc[16];
    std::snprintf(crc, sizeof crc, "%08lx", crc32(0L, reinterpret_cast<const Bytef*>(body.data()), body.size()));
    b = body + "crc " + crc + "\n";
    try {
      parse_probe_cache(b, "bad.txt");
    } catch (const std::runtime_error& e) {
      if (std::string(e.what()).find("bad.txt") == std::string::npos) {
        return ::testing::AssertionFailure() << "message does not name the file: " << e.what();
      }
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "accepted '" << to << "'";
  };
  EXPECT_TRUE(rejects("threads 2", "threads 02"));
  EXPECT_TRUE(rejects("isa avx512_core_amx", "isa amx"));  // an alias, not the name Kiln writes
  EXPECT_TRUE(rejects("matmul_f32 1.500000e-03", "matmul_f32 1.5e-03"));
  EXPECT_TRUE(rejects("matmul_f32 1.500000e-03", "matmul_f32 nan"));
  EXPECT_TRUE(rejects("cpu ", "cpu  "));
  EXPECT_TRUE(rejects("kiln precision probe 1", "kiln precision probe 9"));
  EXPECT_TRUE(rejects("cpu Test", "cpu \tTest"));
  EXPECT_FALSE(rejects("cpu Test", "cpu Best"));  // the CRC fix works: a plain change is accepted
  EXPECT_THROW(parse_probe_cache(std::string(kMaxProbeCacheBytes + 1, '\n'), "big.txt"), std::runtime_error);
}

TEST(PrecisionCache, DefaultDirectoryFollowsTheEnvironment) {
  std::vector<std::pair<std::string, const char*>> saved;
  for (const char* name : {"KILN_CACHE_DIR", "XDG_CACHE_HOME", "HOME"}) {
    const char* v = std::getenv(name);
    saved.emplace_back(v ? v : "", v ? name : nullptr);
  }
  setenv("KILN_CACHE_DIR", "/some/dir", 1);
  EXPECT_EQ(default_cache_dir(), "/some/dir");
  unsetenv("KILN_CACHE_DIR");
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  EXPECT_EQ(default_cache_dir(), "/xdg/kiln");
  setenv("XDG_CACHE_HOME", "relative", 1);  // the XDG spec says to ignore relative paths
  setenv("HOME", "/home/u", 1);
  EXPECT_EQ(default_cache_dir(), "/home/u/.cache/kiln");
  const char* names[] = {"KILN_CACHE_DIR", "XDG_CACHE_HOME", "HOME"};
  for (size_t i = 0; i < saved.size(); ++i) {
    if (saved[i].second) {
      setenv(names[i], saved[i].first.c_str(), 1);
    } else {
      unsetenv(names[i]);
    }
  }
}

// The real probe, once: "auto" resolves to one of the two policies, says why, and is the same
// through global_policy() and policy_from_name(). Which one depends on the CPU.
TEST(AutoPolicy, ResolvesThroughTheProbeAndSaysWhy) {
  nn::set_global_policy("auto");
  nn::Policy p = nn::global_policy();
  nn::set_global_policy("float32");
  std::printf("auto -> %s: %s\n", p.name.c_str(), p.reason.c_str());
  ASSERT_TRUE(p.name == "float32" || p.name == "mixed_bfloat16") << p.name;
  EXPECT_EQ(p.compute_dtype, p.name == "float32" ? DType::f32 : DType::bf16);
  EXPECT_EQ(p.variable_dtype, DType::f32);
  EXPECT_FALSE(p.reason.empty());
  nn::Policy again = nn::policy_from_name("auto");
  EXPECT_EQ(again.name, p.name);
  EXPECT_EQ(again.reason, p.reason);
  PrecisionChoice c = mixed_precision_choice();
  EXPECT_EQ(c.policy, p.name);
  EXPECT_EQ(c.key, current_probe_key());
  if (bf16_native(c.key)) {
    EXPECT_TRUE(c.from_cache);  // the second ask in this process measured nothing
    EXPECT_GT(c.ratio, 0);
    EXPECT_TRUE(std::filesystem::exists(probe_cache_path(default_cache_dir(), c.key)));
  }
  EXPECT_TRUE(nn::policy_from_name("float32").reason.empty());
  EXPECT_THROW(nn::policy_from_name("automatic"), std::invalid_argument);
}

}  // namespace
}  // namespace kiln::cpu
