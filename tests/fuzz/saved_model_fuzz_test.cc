// Deterministic mutation fuzzing of the saved-model loader (nn/model_io.h) under GoogleTest, in
// the style of fuzz_driver_test: fixed seeds, so a failing case number reproduces. Besides
// byte-level mutations (with the file CRC kept or fixed) it decodes the sections and mutates
// the architecture's JSON as a tree, the weights with the checkpoint mutator, and the section
// framing, then re-encodes lengths and CRC so the deeper checks are reached.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "nn/config.h"
#include "nn/model_config.h"
#include "nn/model_io.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/mutators.h"

int kiln_fuzz_saved_model(const uint8_t* data, size_t size);  // saved_model_fuzz_target.cc

extern "C" const char* __asan_default_options() {
  return "abort_on_error=1:max_allocation_size_mb=2048:allocator_may_return_null=1";
}

namespace kiln::fuzz {
namespace {

const char* const kFormat = "saved_model";

struct Stats {
  size_t cases = 0, accepted = 0, bugs = 0;
  std::map<std::string, size_t> kinds;
};
Stats* g_stats = nullptr;
const std::string* g_input = nullptr;
std::string g_label;

std::string out_dir() {
  for (const char* v : {"TEST_UNDECLARED_OUTPUTS_DIR", "TEST_TMPDIR", "TMPDIR"}) {
    if (const char* d = std::getenv(v)) return d;
  }
  return "/tmp";
}

void on_bug(const char* format, const std::string& what) {
  size_t n = g_stats ? ++g_stats->bugs : 1;
  std::string kind;
  for (char c : what.substr(0, 60)) {
    if (!std::isdigit(static_cast<unsigned char>(c))) kind += c;
  }
  if (g_stats && g_stats->kinds[kind]++ > 0) return;
  const std::string empty;
  const std::string& in = g_input ? *g_input : empty;
  std::string path = out_dir() + "/bug-" + format + "-" + std::to_string(n) + ".bin";
  std::ofstream(path, std::ios::binary).write(in.data(), static_cast<std::streamsize>(in.size()));
  ADD_FAILURE() << format << " " << g_label << ": " << what << "\n  input (" << in.size()
                << " bytes): " << describe_bytes(in, 96) << "\n  saved to " << path;
}

bool run_case(const std::string& input, const std::string& label) {
  g_label = label;
  g_input = &input;
  int r = kiln_fuzz_saved_model(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  g_input = nullptr;
  if (g_stats) ++g_stats->cases, g_stats->accepted += r;
  return r != 0;
}

std::filesystem::path fuzz_dir() {
  if (const char* d = std::getenv("KILN_FUZZ_DIR")) return d;
  if (const char* d = std::getenv("TEST_SRCDIR")) return std::filesystem::path(d) / "kiln/tests/fuzz";
  return "tests/fuzz";
}

struct File {
  std::string name, bytes;
};

std::vector<File> read_dir(const std::string& kind) {
  std::vector<File> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(fuzz_dir() / kind / kFormat, ec)) {
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

// --- the format's framing (nn/model_io.h) ---

struct Sections {
  uint32_t version = 1;
  std::vector<std::pair<std::string, std::string>> parts;  // tag, bytes
};

bool decode(const std::string& b, Sections& out) {
  if (b.size() < 20 || b.compare(0, 8, "KILNMODL") != 0) return false;
  uint32_t count;
  std::memcpy(&out.version, b.data() + 8, 4);
  std::memcpy(&count, b.data() + 12, 4);
  size_t pos = 16, end = b.size() - 4;
  for (uint32_t i = 0; i < count; ++i) {
    if (end - pos < 12) return false;
    uint64_t n;
    std::memcpy(&n, b.data() + pos + 4, 8);
    if (n > end - pos - 12) return false;
    out.parts.emplace_back(b.substr(pos, 4), b.substr(pos + 12, n));
    pos += 12 + n;
  }
  return pos == end;
}

void fix_crc(std::string& b) {
  if (b.size() < 4) return;
  uint32_t crc = crc32_of(std::string_view(b).substr(0, b.size() - 4));
  std::memcpy(b.data() + b.size() - 4, &crc, 4);
}

std::string encode(const Sections& s) {
  std::string out = "KILNMODL";
  uint32_t count = static_cast<uint32_t>(s.parts.size());
  out.append(reinterpret_cast<const char*>(&s.version), 4);
  out.append(reinterpret_cast<const char*>(&count), 4);
  for (const auto& [tag, bytes] : s.parts) {
    uint64_t n = bytes.size();
    out += tag;
    out.append(reinterpret_cast<const char*>(&n), 8);
    out += bytes;
  }
  out.append(4, '\0');
  fix_crc(out);
  return out;
}

// --- JSON tree mutations ---

const std::vector<std::string>& names() {
  static const std::vector<std::string> v = {
      "Dense", "Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "BatchNormalization",
      "Dropout", "Flatten", "Rescaling", "Activation", "Add", "Softmax", "Functional", "Sequential", "InputLayer",
      "Adam", "AdamW", "SGD", "RMSprop", "CosineDecay", "LinearWarmup", "StepDecay", "ConstantLR",
      "SparseCategoricalCrossentropy", "MeanSquaredError", "relu", "linear", "softmax", "same", "valid",
      "float32", "mixed_bfloat16", "uint8", "bfloat16", "int32", "channels_first", "accuracy", "units", "filters",
      "kernel_size", "strides", "pool_size", "name", "config", "class_name", "layers", "inbound_nodes",
      "batch_shape", "build_input_shape", "learning_rate", "iterations", "", "dense", "conv", "d", "head"};
  return v;
}

nn::Config random_value(Rng& r, const std::vector<nn::Config>& pool) {
  switch (r.below(9)) {
    case 0: return nn::Config();
    case 1: return nn::Config(r.chance(50));
    case 2: {
      static const int64_t ints[] = {0, 1, 2, 3, -1, 7, 64, 255, 1 << 16, int64_t{1} << 31, int64_t{1} << 40,
                                     INT64_MAX, INT64_MIN};
      return nn::Config(ints[r.below(std::size(ints))]);
    }
    case 3: {
      static const double nums[] = {0.0, -0.0, 0.5, 1.0, -1.0, 1e-7, 0.1, 1e38, 3.5e38, 1e300};
      return r.chance(10) ? nn::Config(std::nan("")) : nn::Config(nums[r.below(std::size(nums))]);
    }
    case 4: return nn::Config(names()[r.below(names().size())]);
    case 5: return nn::Config::list({nn::Config(), nn::Config(int64_t(r.below(8)))});
    case 6: return nn::Config::map();
    default: return pool.empty() ? nn::Config() : pool[r.below(pool.size())];
  }
}

size_t count_nodes(const nn::Config& c) {
  size_t n = 1;
  if (c.is_list() || c.is_map()) {
    for (const nn::Config& x : c.items()) n += count_nodes(x);
  }
  return n;
}

void collect(const nn::Config& c, std::vector<nn::Config>& out) {
  out.push_back(c);
  if (c.is_list() || c.is_map()) {
    for (const nn::Config& x : c.items()) collect(x, out);
  }
}

// A value of the same kind, near the old one: most fields of a strict config only take their
// own kind, so these reach further than random values do.
nn::Config tweak(const nn::Config& c, Rng& r) {
  switch (c.kind()) {
    case nn::Config::Kind::boolean: return nn::Config(!c.as_bool());
    case nn::Config::Kind::integer: {
      // Wrapping arithmetic: the driver itself must not overflow on INT64_MAX.
      uint64_t v = static_cast<uint64_t>(c.as_int());
      static const uint64_t deltas[] = {~uint64_t{0}, 1, ~uint64_t{1}, 2, 5};
      switch (r.below(4)) {
        case 0: return nn::Config(static_cast<int64_t>(v + deltas[r.below(std::size(deltas))]));
        case 1: return nn::Config(static_cast<int64_t>(v * 2));
        case 2: return nn::Config(int64_t(r.below(6)));
        default: return nn::Config(static_cast<int64_t>(0 - v));
      }
    }
    case nn::Config::Kind::number: {
      static const double nums[] = {0.0, 1.0, 0.5, 0.999, 1e-3, 2.0, -1.0, 1e30};
      return r.chance(50) ? nn::Config(c.as_number() * 2) : nn::Config(nums[r.below(std::size(nums))]);
    }
    case nn::Config::Kind::string: return nn::Config(names()[r.below(names().size())]);
    default: return c;
  }
}

// A copy of c with node number `target` (pre-order) tweaked, replaced, deleted or duplicated.
nn::Config mutate_tree(const nn::Config& c, size_t& index, size_t target, Rng& r, const std::vector<nn::Config>& pool) {
  if (index++ == target) {
    if (!c.is_map() && !c.is_list() && r.chance(70)) return tweak(c, r);
    if ((c.is_map() || c.is_list()) && c.size() > 0 && r.chance(50)) {
      // Drop, duplicate or replace one item of this container.
      size_t k = r.below(c.size());
      int op = static_cast<int>(r.below(3));
      if (c.is_list()) {
        std::vector<nn::Config> items = c.items();
        if (op == 0) items.erase(items.begin() + k);
        else if (op == 1) items.insert(items.begin() + k, items[k]);
        else items[k] = random_value(r, pool);
        return nn::Config::list(std::move(items));
      }
      nn::Config m = nn::Config::map();
      for (size_t i = 0; i < c.size(); ++i) {
        if (i == k && op == 0) continue;
        const std::string& key = c.keys()[i];
        m.set(i == k && op == 1 ? names()[r.below(names().size())] : key, i == k && op == 2 ? random_value(r, pool) : c.items()[i]);
      }
      return m;
    }
    return random_value(r, pool);
  }
  if (c.is_list()) {
    std::vector<nn::Config> items;
    for (const nn::Config& x : c.items()) items.push_back(mutate_tree(x, index, target, r, pool));
    return nn::Config::list(std::move(items));
  }
  if (c.is_map()) {
    nn::Config m = nn::Config::map();
    for (size_t i = 0; i < c.size(); ++i) m.set(c.keys()[i], mutate_tree(c.items()[i], index, target, r, pool));
    return m;
  }
  return c;
}

bool mutate_json(std::string& text, Rng& r) {
  nn::Config c;
  try {
    c = nn::parse_config_json(text, "seed");
  } catch (const std::exception&) {
    return false;
  }
  std::vector<nn::Config> pool;
  collect(c, pool);
  int rounds = 1 + static_cast<int>(r.below(3));
  for (int i = 0; i < rounds; ++i) {
    size_t index = 0;
    c = mutate_tree(c, index, r.below(count_nodes(c)), r, pool);
  }
  text = c.to_json(r.chance(20) ? 1 : -1);
  return true;
}

// A file whose weights fit a mutated architecture: the model is built from it under small
// limits (zero weights) and saved, so the mutated config reaches the checks after the weights'.
// Empty when the architecture does not build.
std::string with_fitting_weights(const std::string& arch_json) {
  try {
    nn::Config arch = nn::parse_config_json(arch_json, "mutated architecture");
    nn::ScopedBuildLimits limits({1 << 16, 1 << 22, 1e8}, "mutated architecture");
    std::shared_ptr<nn::Model> model = nn::model_from_config(arch.at("class_name").as_string(), arch.at("config"));
    return model->built() ? nn::serialize_model(*model, {.include_optimizer = false}) : "";
  } catch (const std::exception&) {
    return "";
  }
}

// --- one campaign ---

std::string next_input(const File& seed, const std::vector<File>& corpus, Rng& r, std::string& how, bool& must_reject) {
  std::string in = seed.bytes;
  std::vector<std::string> pool;
  for (const File& f : corpus) pool.push_back(f.bytes);
  Sections s;
  if (r.chance(65) && decode(seed.bytes, s) && !s.parts.empty()) {
    size_t pick = r.below(100);
    if (pick < 55) {
      size_t which = r.chance(75) || s.parts.size() < 3 ? 0 : 2;
      if (which >= s.parts.size() || !mutate_json(s.parts[which].second, r)) return in;
      how = "json tree";
      if (which == 0 && r.chance(40)) {
        std::string fitted = with_fitting_weights(s.parts[0].second);
        if (!fitted.empty()) return how = "json tree, weights fitted", fitted;
      }
    } else if (pick < 75 && s.parts.size() >= 2) {
      size_t which = r.chance(75) || s.parts.size() < 4 ? 1 : 3;
      std::string out;
      if (!mutate_checkpoint(s.parts[which].second, r, out)) return in;
      s.parts[which].second = out;
      how = "weights";
    } else if (pick < 85) {
      Sections other;
      const File& donor = corpus[r.below(corpus.size())];
      if (!decode(donor.bytes, other) || other.parts.empty()) return in;
      size_t k = r.below(std::min(s.parts.size(), other.parts.size()));
      s.parts[k] = other.parts[k];
      how = "spliced section";
    } else if (pick < 95) {
      size_t k = r.below(s.parts.size());
      switch (r.below(4)) {
        case 0: s.parts.erase(s.parts.begin() + k); break;
        case 1: s.parts.push_back(s.parts[k]); break;
        case 2: std::swap(s.parts[k], s.parts[r.below(s.parts.size())]); break;
        default: s.parts[k].first = r.chance(50) ? "COMP" : "XXXX";
      }
      how = "framing";
    } else {
      s.version = static_cast<uint32_t>(interesting_int(r));
      how = "version";
    }
    return encode(s);
  }
  std::vector<std::string> dict = {"KILNMODL", "ARCH", "WGTS", "COMP", "OPTS", "\"units\": ", "null", "[", "]",
                                   "{", "}", ",", ":", "\"", "1e999", "-1", "NaN", "\\u0000"};
  mutate_bytes(in, r, {{8, 4, false}, {12, 4, false}, {20, 8, false}}, dict, pool);
  if (r.chance(60)) {
    fix_crc(in);
    how = "bytes, CRC fixed";
  } else {
    how = "bytes, CRC kept";
    // A splice can carry a matching CRC in from another file; what must fail is a stale one.
    std::string fixed = in;
    fix_crc(fixed);
    must_reject = fixed != in;
  }
  return in;
}

size_t case_budget() {
  const char* env = std::getenv("KILN_FUZZ_CASES");
  return env ? std::strtoull(env, nullptr, 10) : 6000;
}

TEST(SavedModelFuzz, CorpusAndRegressionsReplay) {
  set_bug_handler(on_bug);
  Stats stats;
  g_stats = &stats;
  std::vector<File> corpus = read_dir("corpus");
  ASSERT_FALSE(corpus.empty()) << "no corpus under " << (fuzz_dir() / "corpus" / kFormat);
  for (const char* kind : {"corpus", "regressions"}) {
    for (const File& f : read_dir(kind)) {
      bool ok = run_case(f.bytes, std::string(kind) + "/" + f.name);
      if (f.name.rfind("valid-", 0) == 0) {
        EXPECT_TRUE(ok) << f.name << " was rejected";
      } else if (f.name.rfind("invalid-", 0) == 0) {
        EXPECT_FALSE(ok) << f.name << " was accepted";
      }
    }
  }
  g_stats = nullptr;
  set_bug_handler(nullptr);
}

TEST(SavedModelFuzz, Mutations) {
  set_bug_handler(on_bug);
  Stats stats;
  g_stats = &stats;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<File> corpus = read_dir("corpus");
  ASSERT_FALSE(corpus.empty());
  std::vector<File> valid;
  for (const File& f : corpus) {
    if (f.name.rfind("valid-", 0) == 0) valid.push_back(f);
  }
  // Every strict prefix of a valid file is invalid.
  for (const File& f : valid) {
    for (size_t cut = 0, step = std::max<size_t>(1, f.bytes.size() / 24); cut < f.bytes.size(); cut += step) {
      std::string in = f.bytes.substr(0, cut);
      if (run_case(in, f.name + " truncated to " + std::to_string(cut))) {
        g_input = &in;
        on_bug(kFormat, "silent accept: a strict prefix of a valid file");
        g_input = nullptr;
      }
    }
  }
  Rng r(0x5AFE40DE1);
  const size_t budget = case_budget();
  for (size_t n = 0; stats.cases < budget; ++n) {
    const File& seed = corpus[r.below(corpus.size())];
    std::string how = "unchanged";
    bool must_reject = false;
    std::string in = next_input(seed, corpus, r, how, must_reject);
    bool ok = run_case(in, "case " + std::to_string(n) + " (" + how + " from " + seed.name + ")");
    if (ok && must_reject) {
      g_input = &in;
      on_bug(kFormat, "silent accept: the CRC does not match the bytes");
      g_input = nullptr;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[fuzz] %-12s cases %6zu  accepted %5zu  bugs %zu  %.2f s\n", kFormat, stats.cases, stats.accepted,
              stats.bugs, secs);
  for (const auto& [kind, count] : stats.kinds) std::printf("[fuzz]   %6zu x %s\n", count, kind.c_str());
  g_stats = nullptr;
  set_bug_handler(nullptr);
}

}  // namespace
}  // namespace kiln::fuzz
