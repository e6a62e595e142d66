// Deterministic mutation fuzzing of the graph loader (graph/graph_io.h), in the style of
// fuzz_driver_test: fixed seeds, so a failing case number reproduces. Seeds are traced here and
// checked in under corpus/graph (KILN_FUZZ_WRITE_CORPUS=dir rewrites them); mutations keep or
// recompute the CRC so the parser's deeper checks and the ops' attribute checks are reached.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "graph/graph_io.h"
#include "graph/trace.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/mutators.h"

int kiln_fuzz_graph(const uint8_t* data, size_t size);  // graph_fuzz_target.cc

namespace kiln::fuzz {
namespace {

int g_bugs = 0;
std::string g_label;
void on_bug(const char* format, const std::string& what) {
  if (g_bugs++ < 10) ADD_FAILURE() << format << " " << g_label << ": " << what;
}

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
  set_bug_handler(on_bug);
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
  EXPECT_EQ(g_bugs, 0);
}

}  // namespace
}  // namespace kiln::fuzz
