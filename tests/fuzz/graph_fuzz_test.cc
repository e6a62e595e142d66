// Deterministic mutation fuzzing of the graph loader (graph/graph_io.h), in the style of
// fuzz_driver_test: fixed seeds, so a failing case number reproduces. Seeds are traced here and
// checked in under corpus/graph (KILN_FUZZ_WRITE_CORPUS=dir rewrites them); mutations keep or
// recompute the CRC so the parser's deeper checks and the ops' attribute checks are reached.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "graph/graph_io.h"
#include "graph/trace.h"
#include "tensor/ops/ops.h"
#include "tensor/ops/quantized.h"
#include "tensor/random.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/graph_mutators.h"
#include "tests/fuzz/graph_property.h"
#include "tests/fuzz/mutators.h"

int kiln_fuzz_graph(const uint8_t* data, size_t size);  // graph_fuzz_target.cc

namespace kiln::fuzz {
namespace {

int g_bugs = 0;
std::string g_label;
void on_bug(const char* format, const std::string& what) {
  if (g_bugs++ < 10) ADD_FAILURE() << format << " " << g_label << ": " << what;
}

// Installs on_bug for one test; on leaving, the test fails if any bug was reported, and the
// count starts again for the next test.
struct BugWatch {
  BugWatch() { set_bug_handler(on_bug); }
  ~BugWatch() {
    EXPECT_EQ(g_bugs, 0);
    set_bug_handler(nullptr);
    g_bugs = 0;
  }
};

std::vector<std::string> traced_seeds() {
  Tensor w = random_uniform({4, 3}, -1.f, 1.f, 1), k = random_uniform({3, 3, 2, 4}, -1.f, 1.f, 2);
  Tensor b = random_uniform({4}, -1.f, 1.f, 3);
  std::vector<graph::Graph> graphs;
  graphs.push_back(graph::trace(
      [&](const std::vector<Tensor>& in) {
        return std::vector<Tensor>{softmax(relu(matmul(in[0], w)) * 2.f)};
      },
      {random_uniform({2, 4}, -1.f, 1.f, 4)}, {{"w", w}}));
  graphs.push_back(graph::trace(
      [&](const std::vector<Tensor>& in) {
        Conv2dAttrs o;
        o.padding = Padding::same;
        Tensor y = max_pool2d(conv2d(in[0], k, b, o));
        return std::vector<Tensor>{reduce_mean(reshape(y, {in[0].shape()[0], -1}), {1}, true)};
      },
      {random_uniform({2, 6, 6, 2}, -1.f, 1.f, 5)}, {{"k", k}, {"b", b}}));
  graphs.push_back(graph::trace(
      [&](const std::vector<Tensor>& in) {
        Tensor c = concat({in[0], sigmoid(in[0])}, 1);
        return std::vector<Tensor>{slice(permute(c, {1, 0}), 0, 1, 5, 2), cast(argmax(c, 1), DType::f32)};
      },
      {random_uniform({3, 4}, -1.f, 1.f, 6)}));
  // An int8 CNN as quant::quantize_graph writes one: quantize, qconv2d to u8, max pooling and
  // a reshape in u8, qlinear to f32, and a dequantized side output.
  Tensor k8 = cast(random_uniform({3, 3, 2, 4}, -100.f, 100.f, 7), DType::s8);
  Tensor w8 = cast(random_uniform({36, 3}, -100.f, 100.f, 8), DType::s8);
  Tensor b3 = random_uniform({3}, -1.f, 1.f, 9);
  graphs.push_back(graph::trace(
      [&](const std::vector<Tensor>& in) {
        Conv2dAttrs o;
        o.padding = Padding::same;
        QuantizedEpilogue conv_q{.x_scale = 1.f / 64, .w_scales = {0.01f, 0.02f, 0.01f, 0.03f}};
        conv_q.activation = Epilogue::relu;
        conv_q.out_dtype = DType::u8;
        conv_q.out_scale = 0.05f;
        Tensor x8 = quantize_linear(in[0], 1.f / 64, 0, DType::u8);
        Tensor p8 = max_pool2d(qconv2d(x8, k8, b, Tensor(), o, conv_q));
        QuantizedEpilogue dense_q{.x_scale = 0.05f, .w_scales = {0.01f, 0.005f, 0.02f}};
        Tensor y = qlinear(reshape(p8, {in[0].shape()[0], -1}), w8, b3, Tensor(), dense_q);
        return std::vector<Tensor>{y, dequantize_linear(p8, 0.05f, 0)};
      },
      {random_uniform({2, 6, 6, 2}, 0.f, 1.f, 10)}, {{"k8", k8}, {"w8", w8}, {"b", b}, {"b3", b3}}));
  std::vector<std::string> out;
  for (const auto& g : graphs) out.push_back(graph::serialize_graph(g));
  return out;
}

void fix_crc(std::string& b) {
  if (b.size() < 4) return;
  uint32_t crc = crc32_of(std::string_view(b).substr(0, b.size() - 4));
  std::memcpy(b.data() + b.size() - 4, &crc, 4);
}

TEST(GraphFuzz, SeedsLoadAndMutationsNeverCrash) {
  BugWatch watch;
  size_t checked_in = 0;
  std::vector<std::string> seeds = driver_seeds(traced_seeds(), "graph", "valid-traced", "kgraph", &checked_in);
  EXPECT_GT(checked_in, 0u) << "no checked-in corpus under tests/fuzz/corpus/graph";
  for (size_t i = 0; i < seeds.size(); ++i) {
    g_label = "seed " + std::to_string(i);
    EXPECT_EQ(kiln_fuzz_graph(reinterpret_cast<const uint8_t*>(seeds[i].data()), seeds[i].size()), 1) << g_label;
  }
  const char* env = std::getenv("KILN_FUZZ_CASES");
  const int cases = env ? std::atoi(env) : 3000;
  Rng r(0x6A4F);
  const std::vector<std::string> dictionary = {"KILNGRPH", "conv2d", "reshape", "shape", "axis", "strides",
                                               std::string(8, '\xff'), std::string(4, '\0')};
  int accepted = 0, stale_crc_accepted = 0;
  for (int c = 0; c < cases; ++c) {
    const std::string& seed = seeds[r.below(seeds.size())];
    std::string in = seed;
    mutate_bytes(in, r, {}, dictionary, seeds);
    bool fixed = r.chance(70);
    if (fixed) fix_crc(in);
    g_label = "case " + std::to_string(c);
    int ok = kiln_fuzz_graph(reinterpret_cast<const uint8_t*>(in.data()), in.size());
    accepted += ok;
    if (ok && !fixed && in != seed) ++stale_crc_accepted;
  }
  std::printf("graph: %d cases, %d accepted, %d rejected\n", cases, accepted, cases - accepted);
  EXPECT_EQ(stale_crc_accepted, 0) << "a changed file with a stale CRC was accepted";
}

struct File {
  std::string name, bytes;
};

std::vector<File> read_dir(const std::string& kind) {
  std::filesystem::path dir = std::filesystem::path("tests/fuzz") / kind / "graph";
  if (const char* d = std::getenv("TEST_SRCDIR")) dir = std::filesystem::path(d) / "kiln" / dir;
  std::vector<File> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (!e.is_regular_file() || e.path().filename().string()[0] == '.') continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out.push_back({e.path().filename().string(), ss.str()});
  }
  std::sort(out.begin(), out.end(), [](const File& a, const File& b) { return a.name < b.name; });
  return out;
}

// The crafted files of issue 26 (make_graph_regressions.py). Each must be rejected when loaded,
// or by both Graph::run and InferenceModel: never a crash, never output from one path only.
TEST(GraphFuzz, CraftedRegressionsFailCleanlyOnBothPaths) {
  BugWatch watch;
  std::vector<File> files = read_dir("regressions");
  ASSERT_FALSE(files.empty()) << "no files under tests/fuzz/regressions/graph";
  for (const File& f : files) {
    g_label = f.name;
    graph::Graph g;
    if (!accepts("graph", f.name, [&] { g = graph::parse_graph(f.bytes, f.name); })) continue;
    Agreement a = check_run_agreement(g, f.name, /*report=*/false);
    if (a == Agreement::disagree) ADD_FAILURE() << f.name << ": " << last_disagreement();
    if (f.name.rfind("invalid-", 0) == 0) {
      EXPECT_NE(a, Agreement::both_ran) << f.name << " loaded and ran on both paths";
    }
  }
}

TEST(GraphFuzz, SeedsRunAlikeOnBothPaths) {
  BugWatch watch;
  size_t checked_in = 0;
  std::vector<std::string> seeds = driver_seeds(traced_seeds(), "graph", "valid-traced", "kgraph", &checked_in);
  for (size_t i = 0; i < seeds.size(); ++i) {
    g_label = "seed " + std::to_string(i);
    graph::Graph g = graph::parse_graph(seeds[i], g_label);
    EXPECT_EQ(check_run_agreement(g, g_label), Agreement::both_ran) << g_label << ": " << last_disagreement();
  }
}

// Attribute-level mutations (graph_mutators.h) of every seed, each through the loader's own
// fuzz target (re-serialisation, eager run) and then the property: both paths throw, or both
// run and agree.
TEST(GraphFuzz, AttributeMutationsKeepThePathsInAgreement) {
  BugWatch watch;
  size_t checked_in = 0;
  std::vector<std::string> seeds = driver_seeds(traced_seeds(), "graph", "valid-traced", "kgraph", &checked_in);
  const char* env = std::getenv("KILN_FUZZ_ATTRIBUTE_CASES");
  const int cases = env ? std::atoi(env) : 400;
  Rng r(0xA77E);
  std::map<std::string, int> outcomes;
  for (int c = 0; c < cases; ++c) {
    const std::string& seed = seeds[r.below(seeds.size())];
    graph::Graph g = graph::parse_graph(seed, "seed");
    std::string how;
    for (int edits = 1 + static_cast<int>(r.below(2)); edits > 0; --edits) how += mutate_graph_attributes(g, r) + "; ";
    g_label = "attribute case " + std::to_string(c) + " (" + how + ")";
    std::string bytes;
    try {
      bytes = graph::serialize_graph(g);
    } catch (const std::invalid_argument& e) {
      // Serialising validates every node (Graph::validate): the mutation was refused there,
      // before any loader, pass or planner could see it.
      EXPECT_NE(std::string(e.what()).find("graph: "), std::string::npos) << g_label << ": " << e.what();
      ++outcomes["refused by validation"];
      continue;
    }
    kiln_fuzz_graph(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    graph::Graph loaded;
    if (!accepts("graph", "case", [&] { loaded = graph::parse_graph(bytes, "case"); })) {
      ++outcomes["rejected at load"];
      continue;
    }
    Agreement a = check_run_agreement(loaded, g_label, /*report=*/false);
    if (a == Agreement::disagree) ADD_FAILURE() << g_label << ": " << last_disagreement();
    ++outcomes[a == Agreement::both_ran ? "both ran" : a == Agreement::both_threw ? "both threw"
               : a == Agreement::too_big ? "too big to run" : "disagree"];
  }
  std::printf("graph attribute mutations: %d cases:", cases);
  for (const auto& [what, n] : outcomes) std::printf(" %s %d;", what.c_str(), n);
  std::printf("\n");
}

}  // namespace
}  // namespace kiln::fuzz
