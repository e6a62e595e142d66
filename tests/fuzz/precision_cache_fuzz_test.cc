// Deterministic mutation fuzzing of the mixed-precision cache file (tensor/onednn/precision_cache.h)
// in the style of graph_fuzz_test: fixed seeds, so a failing case number reproduces. Seeds are
// serialised here (KILN_FUZZ_WRITE_CORPUS=dir rewrites corpus/precision_cache/valid-*) and read
// from corpus/precision_cache, where invalid-* files must be rejected. Mutations are byte-level or
// replace, drop, repeat or swap whole lines, then mostly recompute the CRC so that the field
// checks, not only the checksum, are reached. One case in ten also goes through the real lookup
// (mixed_precision_choice on a file in TEST_TMPDIR) to check its one-line warning and re-probe.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tensor/onednn/precision_cache.h"
#include "tensor/onednn/precision_probe.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/mutators.h"

int kiln_fuzz_precision_cache(const uint8_t* data, size_t size);  // precision_cache_fuzz_target.cc

namespace kiln::fuzz {
namespace {

const char* const kFormat = "precision_cache";
int g_bugs = 0;
std::string g_label;
const std::string* g_input = nullptr;

std::string out_dir() {
  for (const char* v : {"TEST_UNDECLARED_OUTPUTS_DIR", "TEST_TMPDIR"}) {
    if (const char* d = std::getenv(v)) return d;
  }
  return "/tmp";
}

void on_bug(const char* format, const std::string& what) {
  if (g_bugs++ >= 10) return;
  std::string saved;
  if (g_input) {
    saved = out_dir() + "/bug-" + format + "-" + std::to_string(g_bugs) + ".bin";
    std::ofstream(saved, std::ios::binary) << *g_input;
  }
  ADD_FAILURE() << format << " " << g_label << ": " << what << "\n  input: " << describe_bytes(g_input ? *g_input : "", 96)
                << (saved.empty() ? "" : "\n  saved to " + saved);
}

const cpu::ProbeKey kLookupKey{"Intel(R) Xeon(R) Processor", "avx512_core avx512_bf16", "2.6.3", "avx512_core_bf16", 2};

std::vector<std::string> generated_seeds() {
  std::vector<cpu::ProbeRecord> records = {
      {kLookupKey, {6.67287e-4, 1.08e-3, 2.1375e-3, 3.5e-3}},
      {{"AMD Ryzen 9 7950X 16-Core Processor", "avx512_core avx512_bf16", "2.6.3", "avx512_core_bf16", 16},
       {2e-4, 1.3e-4, 9e-4, 5e-4}},
      {{"Intel(R) Xeon(R) Platinum 8480+", "avx512_core avx512_bf16 amx_tile amx_bf16", "3.1.1", "avx512_core_amx", 56},
       {1e-4, 2e-5, 3e-4, 1e-4}},
      {{std::string(128, 'x'), "none", "0.0.0", "avx2", 65536}, {1e-9, 60, 60, 1e-9}},
  };
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(cpu::serialize_probe_cache(r));
  return out;
}

void fix_crc(std::string& b) {
  size_t at = b.rfind("crc ");
  std::string body = b.substr(0, at == std::string::npos ? b.size() : at);
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08lx", crc32(0L, reinterpret_cast<const Bytef*>(body.data()), body.size()) & 0xffffffffUL);
  b = body + "crc " + crc + "\n";
}

std::vector<std::string> split_lines(const std::string& b) {
  std::vector<std::string> lines;
  size_t pos = 0;
  for (size_t nl; (nl = b.find('\n', pos)) != std::string::npos; pos = nl + 1) lines.push_back(b.substr(pos, nl - pos));
  if (pos < b.size()) lines.push_back(b.substr(pos));
  return lines;
}

// Replaces a value with one of the forms a strict parser must get right, or drops, repeats or
// swaps lines. The CRC line is left for fix_crc.
void mutate_lines(std::string& b, Rng& r) {
  static const std::vector<std::string> values = {
      "", " ", "nan", "inf", "-inf", "0", "-0", "+1", "01", "65537", "2147483648", "-1.000000e-03",
      "0.000000e+00", "6.000001e+01", "6.000000e+01", "1.000000e-09", "1e-3", "1.0000000e-03", "0x1p-10",
      "1.000000e-03 ", " 1.000000e-03", "1.000000E-03", "avx512", "all", "avx512_core_amx", "sse41", "2.6",
      "2.6.3.1", "002.6.3", "2..3", "1234567.1.1", "none", std::string(129, 'y'), std::string("a\0b", 3),
      "\xff\xfe", "\t", "a\rb"};
  std::vector<std::string> lines = split_lines(b);
  if (lines.size() < 2) return;
  size_t i = r.below(lines.size() - 1), j = r.below(lines.size() - 1);
  switch (r.below(5)) {
    case 0:
    case 1: {
      size_t space = lines[i].find(' ');
      std::string head = space == std::string::npos ? lines[i] : lines[i].substr(0, space + 1);
      lines[i] = head + values[r.below(values.size())];
      break;
    }
    case 2: lines.erase(lines.begin() + i); break;
    case 3: lines.insert(lines.begin() + i, lines[j]); break;
    case 4: std::swap(lines[i], lines[j]); break;
  }
  b.clear();
  for (const std::string& l : lines) b += l + "\n";
}

// The whole lookup on a file holding `bytes`: a usable file with the lookup key is a hit;
// anything else is one measurement, and where a file was there, one warning line naming it.
void check_lookup(const std::string& dir, const std::string& bytes, bool parsed_with_lookup_key) {
  const std::string path = cpu::probe_cache_path(dir, kLookupKey);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  int calls = 0;
  cpu::ProbeOptions o{dir, [&] {
                        ++calls;
                        return cpu::ProbeTimings{1e-3, 2e-3, 1e-3, 2e-3};
                      },
                      kLookupKey};
  testing::internal::CaptureStderr();
  cpu::PrecisionChoice c = cpu::mixed_precision_choice(o);
  std::string err = testing::internal::GetCapturedStderr();
  if (parsed_with_lookup_key) {
    if (calls != 0 || !c.from_cache || !err.empty()) bug(kFormat, "a valid cache file was not used: " + err);
    return;
  }
  if (calls != 1 || c.from_cache) bug(kFormat, "a rejected cache file did not lead to exactly one new measurement");
  if (c.policy != "float32") bug(kFormat, "the re-measured 0.5x bf16 gave " + c.policy);
  if (std::count(err.begin(), err.end(), '\n') != 1 || err.find(path) == std::string::npos) {
    bug(kFormat, "expected one warning line naming the file, got: " + err);
  }
}

TEST(PrecisionCacheFuzz, CorpusAndMutationsNeverCrashOrMisdecide) {
  set_bug_handler(on_bug);
  size_t checked_in = 0;
  std::vector<std::string> generated = generated_seeds();
  const size_t n_generated = generated.size();
  std::vector<std::string> seeds = driver_seeds(generated, kFormat, "valid-generated", "txt", &checked_in);
  EXPECT_GT(checked_in, 0u) << "no checked-in corpus under tests/fuzz/corpus/precision_cache";
  // driver_seeds lists the checked-in files in name order; their names say what they must do.
  std::vector<std::string> names;
  std::filesystem::path corpus = "tests/fuzz/corpus/precision_cache";
  if (const char* d = std::getenv("TEST_SRCDIR")) corpus = std::filesystem::path(d) / "kiln" / corpus;
  for (const auto& e : std::filesystem::directory_iterator(corpus)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names.size(), checked_in);
  std::vector<std::string> valid_seeds;
  for (size_t i = 0; i < seeds.size(); ++i) {
    bool expect_valid = i < n_generated || names[i - n_generated].rfind("valid-", 0) == 0;
    g_label = i < n_generated ? "generated seed " + std::to_string(i) : names[i - n_generated];
    g_input = &seeds[i];
    int ok = kiln_fuzz_precision_cache(reinterpret_cast<const uint8_t*>(seeds[i].data()), seeds[i].size());
    EXPECT_EQ(ok, expect_valid ? 1 : 0) << g_label;
    if (expect_valid) valid_seeds.push_back(seeds[i]);
  }
  const char* env = std::getenv("KILN_FUZZ_CASES");
  const int cases = env ? std::atoi(env) : 3000;
  const std::string dir = out_dir() + "/precision-cache-lookup";
  std::filesystem::create_directories(dir);
  Rng r(0x7072);
  const std::vector<std::string> dictionary = {"kiln precision probe 1\n", "crc ", "threads ", "isa ", "e-03", "e+01",
                                               "avx512_core_bf16", "\n", std::string(4, '\0')};
  int accepted = 0, stale_crc_accepted = 0;
  for (int c = 0; c < cases; ++c) {
    const std::string& seed = valid_seeds[r.below(valid_seeds.size())];
    std::string in = seed;
    bool by_line = r.chance(50);
    if (by_line) {
      mutate_lines(in, r);
    } else {
      mutate_bytes(in, r, {}, dictionary, seeds);
    }
    bool fixed = r.chance(by_line ? 90 : 60);
    if (fixed) fix_crc(in);
    g_label = "case " + std::to_string(c);
    g_input = &in;
    int ok = kiln_fuzz_precision_cache(reinterpret_cast<const uint8_t*>(in.data()), in.size());
    accepted += ok;
    if (ok && !fixed && in != seed) ++stale_crc_accepted;
    if (c % 10 == 0) {
      bool hit = false;
      if (ok) hit = cpu::parse_probe_cache(in, "case").key == kLookupKey;
      check_lookup(dir, in, hit);
    }
  }
  g_input = nullptr;
  std::printf("precision_cache: %d cases, %d accepted, %d rejected\n", cases, accepted, cases - accepted);
  EXPECT_EQ(stale_crc_accepted, 0) << "a changed file with a stale CRC was accepted";
  EXPECT_EQ(g_bugs, 0);
}

}  // namespace
}  // namespace kiln::fuzz
