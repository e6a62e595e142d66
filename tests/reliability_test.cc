// Misuse and hostile input outside the parsers: checked shapes, all-or-nothing loads, empty data.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>

#include "data/atomic_file.h"
#include "kiln.h"
#include "nn/checkpoint.h"
#include "tests/temp_path.h"

namespace kiln {
namespace {

using namespace kiln::nn;

using kiln::testing::temp_path;

template <typename F>
void expect_error_naming(F&& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one naming '" << fragment << "'";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Shapes, NegativeAndOverflowingShapesAreRejectedWithTheShape) {
  expect_error_naming([] { Tensor::empty({2, -3}); }, "[2, -3]");
  expect_error_naming([] { Tensor::empty({int64_t{1} << 40, int64_t{1} << 40}); }, "[1099511627776, 1099511627776]");
  expect_error_naming([] { Tensor::empty({int64_t{1} << 62}, DType::f32); }, "bytes");
  expect_error_naming([] { numel({int64_t{1} << 40, int64_t{1} << 40}); }, "overflows");
  EXPECT_EQ(checked_nbytes({3, 0, 5}, 4, "t"), 0u);
  // Empty, but its strides would still multiply the other dims: rejected (found by fuzzing).
  expect_error_naming([] { Tensor::empty({0, 4, int64_t{8370904481869084718}}, DType::u8); }, "64 bits");
}

TEST(Shapes, AnAllocationTooLargeForTheMachineIsAClearError) {
  // 2^47 bytes: no machine here has them; the error names the bytes, never a bare bad_alloc.
  try {
    Tensor::empty({int64_t{1} << 45}, DType::f32);
    GTEST_SKIP() << "this machine allocated 128 TiB";
  } catch (const AllocationError& e) {
    EXPECT_NE(std::string(e.what()).find("bytes"), std::string::npos);
  }
}

std::unique_ptr<Sequential> small_model(const std::string& prefix, uint64_t seed) {
  set_global_seed(seed);
  auto m = std::make_unique<Sequential>(
      std::vector<Layer>{Dense(4, "relu", {}, prefix + "_d1"), Dense(3, "", {}, prefix + "_d2")}, prefix);
  m->build({2});
  m->compile(optim::Adam(0.01f), SparseCategoricalCrossentropy(true));
  return m;
}

data::Dataset tiny_data(int64_t n) {
  std::vector<float> x(2 * n, 0.5f);
  std::vector<int32_t> y(n, 1);
  return data::Dataset::from_tensor_slices(Tensor::from_vector(x, {n, 2}), Tensor::from_int32(y, {n})).batch(4);
}

std::vector<std::vector<float>> snapshot(const Model& m) {
  std::vector<std::vector<float>> out;
  for (const Variable& v : m.variables()) out.push_back(v.value().to_vector());
  return out;
}

// Rewrites a checkpoint's trailing CRC so that a test reaches the parser's other checks.
std::string with_fixed_crc(std::string bytes) {
  uint32_t crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size() - 4));
  std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  return bytes;
}

TEST(Checkpoint, DuplicateEntryNamesAreRejected) {
  std::string p = temp_path("dup.kckpt");
  write_checkpoint(p, {{"a", Tensor::zeros({1})}, {"b", Tensor::zeros({1})}});
  std::string bytes = data::read_file(p);
  size_t at = bytes.find('b', 16);
  ASSERT_NE(at, std::string::npos);
  bytes[at] = 'a';
  expect_error_naming([&] { parse_checkpoint(with_fixed_crc(bytes), p); }, "two entries named 'a'");
}

TEST(Checkpoint, HugeCountsAndDimsFailBeforeAllocating) {
  std::string p = temp_path("huge.kckpt");
  write_checkpoint(p, {{"w", Tensor::zeros({2, 3})}});
  std::string bytes = data::read_file(p);
  std::string many = bytes;
  uint32_t count = 0xffffffffu;
  std::memcpy(many.data() + 12, &count, 4);
  expect_error_naming([&] { parse_checkpoint(with_fixed_crc(many), p); }, "entries");
  // The first dim sits after magic, version, count, name length, name "w", dtype and rank.
  std::string big = bytes;
  int64_t dim = int64_t{1} << 61;
  std::memcpy(big.data() + 8 + 4 + 4 + 4 + 1 + 1 + 1, &dim, 8);
  expect_error_naming([&] { parse_checkpoint(with_fixed_crc(big), p); }, "'w'");
  std::string negative = bytes;
  dim = -2;
  std::memcpy(negative.data() + 8 + 4 + 4 + 4 + 1 + 1 + 1, &dim, 8);
  expect_error_naming([&] { parse_checkpoint(with_fixed_crc(negative), p); }, "negative");
}

TEST(Checkpoint, MetaEntriesOfTheWrongShapeAreClearErrors) {
  auto model = small_model("meta", 1);
  model->fit(tiny_data(8), {.epochs = 1, .verbose = 0});
  std::string p = temp_path("meta.kckpt");
  model->save_checkpoint(p, 1);
  NamedTensors entries = read_checkpoint(p);
  for (auto& [n, t] : entries) {
    if (n == "meta/optimizer_iterations") t = Tensor::from_int32({1}, {1});  // one element, not two
  }
  write_checkpoint(p, entries);
  auto other = small_model("meta", 2);
  auto before = snapshot(*other);
  expect_error_naming([&] { other->load_checkpoint(p); }, "meta/optimizer_iterations");
  EXPECT_EQ(snapshot(*other), before);
}

TEST(Checkpoint, FailedLoadsChangeNothing) {
  auto model = small_model("partial", 1);
  model->fit(tiny_data(8), {.epochs = 1, .verbose = 0});
  std::string weights_only = temp_path("weights_only.kckpt"), full = temp_path("full.kckpt");
  model->save_weights(weights_only);
  model->save_checkpoint(full, 1);

  auto other = small_model("partial", 2);
  other->fit(tiny_data(8), {.epochs = 1, .verbose = 0});
  auto before = snapshot(*other);
  auto slots_before = other->optimizer().slot_state(other->trainable_variables());
  int64_t iterations_before = other->optimizer().iterations();

  // A weights-only file: the error comes before any weight is touched.
  expect_error_naming([&] { other->load_checkpoint(weights_only); }, "weights only");
  EXPECT_EQ(snapshot(*other), before);

  // A slot of the wrong shape, found after the weights validated.
  NamedTensors entries = read_checkpoint(full);
  for (auto& [n, t] : entries) {
    if (n == "optimizer/partial_d2/bias/m") t = Tensor::zeros({5});
  }
  std::string bad_slot = temp_path("bad_slot.kckpt");
  write_checkpoint(bad_slot, entries);
  expect_error_naming([&] { other->load_checkpoint(bad_slot); }, "partial_d2/bias/m");
  EXPECT_EQ(snapshot(*other), before);
  EXPECT_EQ(other->optimizer().iterations(), iterations_before);
  auto slots_after = other->optimizer().slot_state(other->trainable_variables());
  ASSERT_EQ(slots_after.size(), slots_before.size());
  for (size_t i = 0; i < slots_after.size(); ++i) {
    EXPECT_EQ(slots_after[i].second.to_vector(), slots_before[i].second.to_vector()) << slots_after[i].first;
  }

  // Weights for a variable the model does not have: saved from a different model.
  NamedTensors extra = read_checkpoint(weights_only);
  extra.emplace_back("partial_d3/kernel", Tensor::zeros({3, 3}));
  write_checkpoint(weights_only, extra);
  expect_error_naming([&] { other->load_weights(weights_only); }, "partial_d3/kernel");
  EXPECT_EQ(snapshot(*other), before);

  // And a good load still works afterwards.
  EXPECT_EQ(other->load_checkpoint(full), 1);
  EXPECT_EQ(snapshot(*other), snapshot(*model));
}

TEST(EmptyData, FitEvaluateAndValidationOnEmptyDataAreErrors) {
  auto model = small_model("empty", 1);
  data::Dataset empty = data::Dataset::from_tensor_slices(Tensor::zeros({0, 2}), Tensor::from_int32({}, {0})).batch(4);
  expect_error_naming([&] { model->fit(empty, {.epochs = 1, .verbose = 0}); }, "empty");
  expect_error_naming([&] { model->evaluate(empty); }, "empty");
  expect_error_naming([&] { model->fit(tiny_data(8), {.epochs = 1, .validation_data = empty, .verbose = 0}); }, "empty");
  expect_error_naming([&] { model->predict(Tensor::zeros({0, 2})); }, "empty");
  // A dataset whose emptiness shows only when iterated: every element filtered by take(0).
  expect_error_naming([&] { model->fit(tiny_data(8).take(0), {.epochs = 1, .verbose = 0}); }, "empty");
}

}  // namespace
}  // namespace kiln
