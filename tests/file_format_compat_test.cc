// Files written before the binary formats moved onto base/byte_io (by the code at 8c89849, under
// tests/testdata/formats) still load, and writing what they hold again gives the same bytes.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>

#include "base/files.h"
#include "graph/graph_io.h"
#include "kiln.h"
#include "nn/model_io.h"

namespace kiln {
namespace {

using nn::NamedTensors;

const std::string kDir = "tests/testdata/formats/";

// The fixture model's prediction for random_uniform({1, 4, 4, 2}, 0, 1, seed 6), printed by the
// program that wrote the fixtures.
const std::vector<float> kPrediction = {0.273317903f, -0.143103659f};

std::vector<int32_t> ints_of(const Tensor& t) {
  std::vector<int32_t> out(t.numel());
  std::memcpy(out.data(), t.raw_data(), t.nbytes());
  return out;
}

TEST(FileFormatCompat, CheckpointVersion1) {
  const std::string path = kDir + "checkpoint_v1.kckpt";
  NamedTensors entries = nn::read_checkpoint(path);
  ASSERT_EQ(entries.size(), 6u);
  const std::vector<std::string> names = {"f32", "bf16", "s32", "s8", "u8", "scalar"};
  const std::vector<DType> dtypes = {DType::f32, DType::bf16, DType::s32, DType::s8, DType::u8, DType::f32};
  const std::vector<Shape> shapes = {{2, 3}, {3}, {2}, {1, 2}, {1}, {}};
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].first, names[i]);
    EXPECT_EQ(entries[i].second.dtype(), dtypes[i]) << names[i];
    EXPECT_EQ(entries[i].second.shape(), shapes[i]) << names[i];
  }
  EXPECT_EQ(entries[0].second.to_vector(), (std::vector<float>{1.5f, -2.f, 0.25f, 3.f, -0.f, 1e-3f}));
  EXPECT_EQ(cast(entries[1].second, DType::f32).to_vector(), (std::vector<float>{1.f, -0.5f, 2.f}));
  EXPECT_EQ(ints_of(entries[2].second), (std::vector<int32_t>{7, -9}));
  EXPECT_EQ(cast(entries[3].second, DType::f32).to_vector(), (std::vector<float>{-3.f, 4.f}));
  EXPECT_EQ(cast(entries[4].second, DType::f32).to_vector(), (std::vector<float>{200.f}));
  EXPECT_EQ(entries[5].second.to_vector(), (std::vector<float>{42.f}));
  EXPECT_EQ(nn::serialize_checkpoint(entries), base::read_file(path));
}

// The checkpoint's layout, byte by byte as its header comment gives it, built here without the
// writer: what the code reads is the documented format, not only what it writes.
TEST(FileFormatCompat, CheckpointBytesAsDocumented) {
  std::string b = "KILNCKPT";
  auto u32 = [&b](uint32_t v) {
    for (int i = 0; i < 4; ++i) b += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  auto u64 = [&b](uint64_t v) {
    for (int i = 0; i < 8; ++i) b += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  u32(1);  // version
  u32(1);  // entries
  u32(1);
  b += "w";
  b += '\0';  // f32
  b += '\1';  // rank 1
  u64(2);     // dims
  u64(8);     // bytes
  u32(0x3f800000);  // 1.0f
  u32(0xc0000000);  // -2.0f
  std::string whole = b;
  uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(whole.data()), static_cast<uInt>(whole.size()));
  u32(static_cast<uint32_t>(crc));
  NamedTensors entries = nn::parse_checkpoint(b, "built");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].first, "w");
  EXPECT_EQ(entries[0].second.to_vector(), (std::vector<float>{1.f, -2.f}));
  EXPECT_EQ(nn::serialize_checkpoint(entries), b);
}

TEST(FileFormatCompat, GraphVersion1) {
  const std::string path = kDir + "graph_v1.kgraph";
  graph::Graph g = graph::load_graph(path);
  EXPECT_EQ(graph::serialize_graph(g), base::read_file(path));
  Tensor y = g.run(random_uniform({1, 4, 4, 2}, 0.f, 1.f, 6));
  std::vector<float> got = y.to_vector();
  ASSERT_EQ(got.size(), kPrediction.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], kPrediction[i], 1e-5f);
}

TEST(FileFormatCompat, SavedModelVersion1WithCompileState) {
  const std::string path = kDir + "model_v1.kmodel";
  std::shared_ptr<nn::Model> model = nn::load_model(path);
  ASSERT_TRUE(model->compiled());
  EXPECT_EQ(model->optimizer().name(), "Adam");
  EXPECT_GT(model->optimizer().iterations(), 0);
  // Architecture JSON, weights, optimizer and loss configs and slots all come back as they were.
  EXPECT_EQ(nn::serialize_model(*model), base::read_file(path));
  std::vector<float> got = (*model)(random_uniform({1, 4, 4, 2}, 0.f, 1.f, 6)).to_vector();
  ASSERT_EQ(got.size(), kPrediction.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], kPrediction[i], 1e-5f);
}

}  // namespace
}  // namespace kiln
