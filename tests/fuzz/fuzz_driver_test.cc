// Deterministic mutation fuzzing of every loader under GoogleTest: fixed seeds, so a failing
// case number reproduces. A crash or sanitizer report ends the run (the input is saved first);
// the oracles in the targets and here record a failure, save the input and carry on.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/mutators.h"

// Sanitizer reports end in abort(), so the SIGABRT handler below can save the input (GCC's
// UBSan runtime is separate from ASan's and ignores ASan's death callback). With
// allocator_may_return_null, a request above 2 GiB fails as on a small machine, so an unbounded
// size from a file shows up as a bug instead of being lazily granted.
extern "C" const char* __asan_default_options() {
  return "abort_on_error=1:max_allocation_size_mb=2048:allocator_may_return_null=1";
}
extern "C" const char* __ubsan_default_options() { return "abort_on_error=1:print_stacktrace=1"; }
extern "C" void __sanitizer_set_death_callback(void (*)(void)) __attribute__((weak));

namespace kiln::fuzz {
namespace {

struct Format {
  const char* name;
  int (*target)(const uint8_t*, size_t);
  uint64_t seed;
  bool prefixes_invalid;  // every strict prefix of a valid file is invalid (not so for CSV)
  std::vector<std::string> dictionary;
};

const Format kCheckpoint{"checkpoint", kiln_fuzz_checkpoint, 0xC4EC4901, true, {"KILNCKPT", std::string(4, '\0'), "\xff\xff\xff\xff"}};
const Format kNpy{"npy", kiln_fuzz_npy, 0x4E5059, true,
                  {"'descr'", "'shape'", "True", "False", "(", ")", ",", "'", " ", "\n", "-1", "\x93NUMPY", "3L",
                   "9223372036854775808", "'<f8'"}};
const Format kIdx{"idx", kiln_fuzz_idx, 0x1D8, true,
                  {std::string("\0\0\x08\x01", 4), std::string("\0\0\x0d\x03", 4), "\x1f\x8b", "\xff\xff\xff\xff"}};
const Format kCsv{"csv", kiln_fuzz_csv, 0xC5F, false,
                  {",", "\n", "\r\n", "\r", "\"", " ", "\t", "nan", "-inf", "1e39", "1e-46", "0x1p3", "-", "+", ".",
                   "e", std::string(1, '\0'), "\xef\xbb\xbf", "3.4028236e38", ";"}};

// --- the case being run, kept where a signal handler can reach it ---

struct Stats {
  size_t cases = 0, accepted = 0, rejected = 0, bugs = 0;
};
Stats* g_stats = nullptr;
const std::string* g_input = nullptr;
char g_label[256];
char g_crash_path[1024];

std::string out_dir() {
  for (const char* v : {"TEST_UNDECLARED_OUTPUTS_DIR", "TEST_TMPDIR", "TMPDIR"}) {
    if (const char* d = std::getenv(v)) return d;
  }
  return "/tmp";
}

void write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return;
    p += w, n -= static_cast<size_t>(w);
  }
}

// Async-signal-safe: open/write/close only. Runs once: a sanitizer's death callback and the
// abort() that follows would both call it.
void dump_current() {
  static volatile sig_atomic_t dumped = 0;
  if (!g_input || dumped) return;
  dumped = 1;
  int fd = open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) write_all(fd, g_input->data(), g_input->size()), close(fd);
  const char* msg = "\nKILN FUZZ: crashed on ";
  write_all(2, msg, std::strlen(msg));
  write_all(2, g_label, std::strlen(g_label));
  write_all(2, "; input saved to ", 17);
  write_all(2, g_crash_path, std::strlen(g_crash_path));
  write_all(2, "\n", 1);
}

void on_signal(int sig) {
  dump_current();
  raise(sig);  // SA_RESETHAND restored the default action
}

void install_crash_dump() {
  static bool done = false;
  if (done) return;
  done = true;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGABRT, &sa, nullptr);  // std::terminate, bug() without a handler
  if (__sanitizer_set_death_callback) {
    __sanitizer_set_death_callback(dump_current);  // leave SEGV to the sanitizer's own handler
  } else {
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) sigaction(sig, &sa, nullptr);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && !defined(KILN_SANITIZER)
    // Without ASan's allocator limit, cap the address space so an unbounded allocation fails
    // (and is reported) instead of being lazily granted.
    struct rlimit lim = {size_t{4} << 30, size_t{4} << 30};
    setrlimit(RLIMIT_AS, &lim);
#endif
  }
}

std::string save_input(const char* format, const std::string& input, size_t n) {
  std::string path = out_dir() + "/bug-" + format + "-" + std::to_string(n) + ".bin";
  std::ofstream(path, std::ios::binary).write(input.data(), static_cast<std::streamsize>(input.size()));
  return path;
}

// Many cases hit the same bug; show the first input of each kind (the message without its
// numbers or shape) and count the rest.
std::map<std::string, size_t>* g_kinds = nullptr;

void on_bug(const char* format, const std::string& what) {
  size_t n = g_stats ? ++g_stats->bugs : 1;
  std::string_view head = std::string_view(what).substr(0, what.find('['));  // drop a shape
  if (head.size() < what.size() && head.rfind(": ") != std::string_view::npos) head = head.substr(0, head.rfind(": "));
  std::string kind;
  for (char c : head.substr(0, 70)) {
    if (!std::isdigit(static_cast<unsigned char>(c))) kind += c;
  }
  if (g_kinds && (*g_kinds)[kind]++ > 0) return;
  if (g_kinds && g_kinds->size() > 12) return;
  const std::string empty;
  const std::string& in = g_input ? *g_input : empty;
  ADD_FAILURE() << format << " " << g_label << ": " << what << "\n  input (" << in.size()
                << " bytes): " << describe_bytes(in, 96) << "\n  saved to " << save_input(format, in, n);
}

int run_case(const Format& f, const std::string& input, const std::string& label) {
  std::snprintf(g_label, sizeof g_label, "%s", label.c_str());
  std::snprintf(g_crash_path, sizeof g_crash_path, "%s/crash-%s.bin", out_dir().c_str(), f.name);
  g_input = &input;
  int r = f.target(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  g_input = nullptr;
  if (g_stats) {
    ++g_stats->cases;
    ++(r ? g_stats->accepted : g_stats->rejected);
  }
  return r;
}

void expect_rejected(const Format& f, bool accepted, const std::string& input, const std::string& why) {
  if (!accepted) return;
  g_input = &input;
  on_bug(f.name, "silent accept: " + why);
  g_input = nullptr;
}

// --- files ---

std::filesystem::path fuzz_dir() {
  if (const char* d = std::getenv("KILN_FUZZ_DIR")) return d;
  if (const char* d = std::getenv("TEST_SRCDIR")) return std::filesystem::path(d) / "kiln/tests/fuzz";
  return "tests/fuzz";
}

struct File {
  std::string name, bytes;
};

std::vector<File> read_dir(const std::string& kind, const char* format) {
  std::vector<File> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(fuzz_dir() / kind / format, ec)) {
    std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name[0] == '.') continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out.push_back({name, ss.str()});
  }
  std::sort(out.begin(), out.end(), [](const File& a, const File& b) { return a.name < b.name; });
  return out;
}

// --- one format's campaign ---

size_t case_budget() {
  const char* env = std::getenv("KILN_FUZZ_CASES");
  return env ? std::strtoull(env, nullptr, 10) : 3000;
}

// Builds the next mutated input from seed `s`; sets `oracle` when the driver knows the answer.
std::string next_input(const Format& f, const File& s, bool seed_valid, const std::vector<std::string>& pool, Rng& r,
                       std::string& how, std::string& must_reject) {
  std::string in = s.bytes;
  std::string_view name = f.name;
  if (name == "checkpoint") {
    if (r.chance(45) && mutate_checkpoint(s.bytes, r, in)) {
      how = "structured";
      if (r.chance(20)) mutate_bytes(in, r, checkpoint_fields(in), f.dictionary, pool), fix_checkpoint_crc(in);
      return in;
    }
    mutate_bytes(in, r, checkpoint_fields(s.bytes), f.dictionary, pool);
    if (r.chance(60)) {
      how = "bytes, CRC fixed";
      fix_checkpoint_crc(in);
    } else {
      how = "bytes, CRC kept";
      if (seed_valid && in != s.bytes) must_reject = "a byte changed and the CRC was not updated";
    }
    return in;
  }
  if (name == "npy") {
    if (r.chance(45) && mutate_npy(s.bytes, r, in)) return how = "structured", in;
    mutate_bytes(in, r, npy_fields(s.bytes), f.dictionary, pool);
    return how = "bytes", in;
  }
  if (name == "idx") {
    std::string payload;
    bool gz = is_gzip(s.bytes) && gunzip(s.bytes, payload);
    if (!gz) payload = s.bytes;
    if (!gz || r.chance(60)) {
      std::string p = payload;
      bool structured = r.chance(50) && mutate_idx_payload(payload, r, p);
      if (!structured) mutate_bytes(p, r, idx_fields(payload), f.dictionary, pool);
      how = structured ? "structured" : "bytes";
      if (!gz && !r.chance(20)) return p;
      // Mutate the payload and compress it again, so the parser (not just the CRC) is tested.
      in = gzip(p, 1 + static_cast<int>(r.below(9)));
      how += " payload, re-gzipped";
      if (r.chance(15) && in.size() > 1) {
        in.resize(1 + r.below(in.size() - 1));
        how += ", truncated";
        must_reject = "a truncated gzip stream";
      } else if (r.chance(10) && in.size() >= 8) {
        in[in.size() - 1 - r.below(8)] ^= static_cast<char>(1u << r.below(8));
        how += ", trailer bit flipped";
        must_reject = "a gzip stream whose CRC-32 or length trailer does not match";
      }
      return in;
    }
    mutate_bytes(in, r, {}, f.dictionary, pool);
    return how = "gzip bytes", in;
  }
  if (r.chance(40)) return how = "generated", generate_csv(r);
  mutate_bytes(in, r, {}, f.dictionary, pool);
  return how = "bytes", in;
}

void fuzz_format(const Format& f) {
  install_crash_dump();
  set_bug_handler(on_bug);
  std::vector<File> corpus = read_dir("corpus", f.name);
  ASSERT_FALSE(corpus.empty()) << "no corpus under " << (fuzz_dir() / "corpus" / f.name);
  std::vector<std::string> pool;
  for (const File& c : corpus) pool.push_back(c.bytes);
  Stats stats;
  g_stats = &stats;
  std::map<std::string, size_t> kinds;
  g_kinds = &kinds;
  auto t0 = std::chrono::steady_clock::now();

  std::vector<bool> accepted, valid;  // valid: accepted and named valid-*, so known to be well formed
  for (const File& c : corpus) {
    accepted.push_back(run_case(f, c.bytes, "seed " + c.name) != 0);
    valid.push_back(accepted.back() && c.name.rfind("valid-", 0) == 0);
  }
  // Truncation at evenly spread offsets of every accepted seed.
  for (size_t i = 0; i < corpus.size(); ++i) {
    if (!accepted[i]) continue;
    const std::string& b = corpus[i].bytes;
    for (size_t cut = 0, step = std::max<size_t>(1, b.size() / 24); cut < b.size(); cut += step) {
      std::string in = b.substr(0, cut);
      bool ok = run_case(f, in, "seed " + corpus[i].name + " truncated to " + std::to_string(cut));
      if (f.prefixes_invalid && valid[i]) expect_rejected(f, ok, in, "a strict prefix of a valid file");
    }
  }
  Rng r(f.seed);
  const size_t budget = case_budget();
  for (size_t n = 0; stats.cases < budget; ++n) {
    size_t i = r.below(corpus.size());
    std::string how, must_reject;
    std::string in = next_input(f, corpus[i], valid[i], pool, r, how, must_reject);
    bool ok = run_case(f, in, "case " + std::to_string(n) + " (" + how + " from " + corpus[i].name + ")");
    if (!must_reject.empty()) expect_rejected(f, ok, in, must_reject);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[fuzz] %-10s cases %6zu  accepted %5zu  rejected %6zu  bugs %zu  %.2f s\n", f.name, stats.cases,
              stats.accepted, stats.rejected, stats.bugs, secs);
  for (const auto& [kind, count] : kinds) std::printf("[fuzz]   %6zu x %s\n", count, kind.c_str());
  std::fflush(stdout);
  g_stats = nullptr;
  g_kinds = nullptr;
  set_bug_handler(nullptr);
}

// Corpus files named valid-* must load and invalid-* must not; regressions must simply run
// through the oracles without a crash or bug.
void replay(const Format& f) {
  install_crash_dump();
  set_bug_handler(on_bug);
  Stats stats;
  g_stats = &stats;
  size_t files = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    for (const File& c : read_dir(kind, f.name)) {
      ++files;
      bool ok = run_case(f, c.bytes, std::string(kind) + "/" + f.name + "/" + c.name);
      std::string where = std::string(kind) + "/" + f.name + "/" + c.name;
      if (c.name.rfind("valid-", 0) == 0) {
        EXPECT_TRUE(ok) << where << " was rejected";
      } else if (c.name.rfind("invalid-", 0) == 0) {
        EXPECT_FALSE(ok) << where << " was accepted";
      }
    }
  }
  std::printf("[replay] %-10s %zu files, %zu accepted\n", f.name, files, stats.accepted);
  g_stats = nullptr;
  set_bug_handler(nullptr);
}

TEST(FuzzReplay, Checkpoint) { replay(kCheckpoint); }
TEST(FuzzReplay, Npy) { replay(kNpy); }
TEST(FuzzReplay, Idx) { replay(kIdx); }
TEST(FuzzReplay, Csv) { replay(kCsv); }
TEST(Fuzz, Checkpoint) { fuzz_format(kCheckpoint); }
TEST(Fuzz, Npy) { fuzz_format(kNpy); }
TEST(Fuzz, Idx) { fuzz_format(kIdx); }
TEST(Fuzz, Csv) { fuzz_format(kCsv); }

}  // namespace
}  // namespace kiln::fuzz
