#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <set>

#include "data/atomic_file.h"
#include "data/csv.h"
#include "data/dataset.h"
#include "data/fashion_mnist.h"
#include "data/idx.h"
#include "data/npy.h"
#include "tests/temp_path.h"

namespace kiln::data {
namespace {

using kiln::testing::temp_path;

Dataset numbers(int64_t n) {
  std::vector<float> x(n);
  std::vector<int32_t> y(n);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(i);
    y[i] = static_cast<int32_t>(i * 10);
  }
  return Dataset::from_tensor_slices(Tensor::from_vector(x, {n, 1}), Tensor::from_int32(y, {n}));
}

std::vector<std::vector<float>> collect(const Dataset& ds) {
  std::vector<std::vector<float>> out;
  BatchIterator it = ds.begin_iteration();
  while (auto b = it.next()) out.push_back(b->x.to_vector());
  return out;
}

TEST(Dataset, BatchesKeepFeaturesAndLabelsAligned) {
  Dataset ds = numbers(10).batch(4);
  EXPECT_EQ(ds.cardinality(), 3);
  BatchIterator it = ds.begin_iteration();
  auto b = it.next();
  EXPECT_EQ(b->x.shape(), (Shape{4, 1}));
  EXPECT_EQ(b->y.to_int32(), (std::vector<int32_t>{0, 10, 20, 30}));
  it.next();
  EXPECT_EQ(it.next()->x.shape(), (Shape{2, 1}));
  EXPECT_FALSE(it.next().has_value());
  EXPECT_EQ(numbers(10).batch(4, true).cardinality(), 2);
  EXPECT_EQ(collect(numbers(10).batch(4, true)).size(), 2u);
}

TEST(Dataset, ShuffleIsASeededPermutationThatChangesPerEpoch) {
  Dataset ds = numbers(50).shuffle(50, 99).batch(50);
  auto a = collect(ds)[0], again = collect(ds)[0];
  EXPECT_EQ(a, again);
  std::set<float> seen(a.begin(), a.end());
  EXPECT_EQ(seen.size(), 50u);
  EXPECT_NE(a, collect(numbers(50).batch(50))[0]);
  ds.set_epoch(1);
  EXPECT_NE(collect(ds)[0], a);
  ds.set_epoch(0);
  EXPECT_EQ(collect(ds)[0], a);
  // A small buffer only moves elements locally, as tf.data's does.
  auto local = collect(numbers(100).shuffle(5, 3).batch(100))[0];
  for (size_t i = 0; i < local.size(); ++i) EXPECT_LE(local[i], i + 5.0f);
}

TEST(Dataset, SetEpochChangesOnlyThatObject) {
  Dataset mine = numbers(50).shuffle(50, 99).batch(50);
  auto epoch0 = collect(mine)[0];
  Dataset copy = mine;  // as fit() takes it
  Dataset derived = mine.prefetch(1);
  copy.set_epoch(3);
  derived.set_epoch(4);
  EXPECT_EQ(mine.epoch(), 0);
  EXPECT_EQ(collect(mine)[0], epoch0);
  EXPECT_NE(collect(copy)[0], epoch0);
  mine.set_epoch(2);
  EXPECT_EQ(copy.epoch(), 3);
  EXPECT_EQ(derived.epoch(), 4);
  EXPECT_EQ(mine.prefetch(1).epoch(), 2);  // a dataset derived later starts where mine is
}

TEST(Dataset, RepeatTakeShardMapAndPrefetch) {
  EXPECT_EQ(collect(numbers(3).repeat(2).batch(2)).size(), 3u);
  EXPECT_EQ(numbers(3).repeat(2).batch(2).cardinality(), 3);
  EXPECT_EQ(numbers(3).repeat().batch(2).cardinality(), -1);
  EXPECT_EQ(collect(numbers(10).batch(2).take(3)).size(), 3u);
  auto shard = collect(numbers(10).shard(3, 1).batch(10))[0];
  EXPECT_EQ(shard, (std::vector<float>{1, 4, 7}));
  EXPECT_EQ(numbers(10).shard(3, 1).cardinality(), 3);
  auto mapped = collect(numbers(4).batch(2).map([](Batch b) {
    b.x = Tensor::from_vector(std::vector<float>(b.x.numel(), 7.f), b.x.shape());
    return b;
  }));
  EXPECT_EQ(mapped[1], (std::vector<float>{7, 7}));
  Dataset base = numbers(37).shuffle(37, 5).batch(8);
  EXPECT_EQ(collect(base.prefetch(3)), collect(base));
  // Errors raised on the prefetch thread reach the caller.
  Dataset failing = numbers(4).batch(2).map([](Batch) -> Batch { throw std::runtime_error("bad batch"); }).prefetch(2);
  BatchIterator it = failing.begin_iteration();
  EXPECT_THROW(it.next(), std::runtime_error);
  // Abandoning a prefetching iterator early must not hang.
  { BatchIterator early = numbers(1000).batch(1).prefetch(2).begin_iteration(); early.next(); }
}

TEST(Dataset, BadArgumentsAreClear) {
  EXPECT_THROW(Dataset::from_tensor_slices(Tensor::zeros({3, 2}), Tensor::zeros({4})), std::invalid_argument);
  EXPECT_THROW(numbers(3).batch(0), std::invalid_argument);
  EXPECT_THROW(numbers(3).batch(2).batch(2), std::invalid_argument);
  EXPECT_THROW(numbers(3).map([](Batch b) { return b; }), std::invalid_argument);
  EXPECT_THROW(numbers(3).shard(2, 2), std::invalid_argument);
  EXPECT_THROW(numbers(3).shuffle(0), std::invalid_argument);
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

std::string idx_bytes(const std::vector<uint32_t>& dims, const std::string& data, unsigned char type = 0x08) {
  std::string s = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    s += static_cast<char>(d >> 24);
    s += static_cast<char>(d >> 16);
    s += static_cast<char>(d >> 8);
    s += static_cast<char>(d);
  }
  return s + data;
}

TEST(Idx, ReadsGzipAndPlainAndRejectsBadFiles) {
  std::string p = temp_path("images.idx.gz");
  write_gz(p, idx_bytes({2, 2, 3}, std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\xff", 12)));
  Tensor t = read_idx(p);
  EXPECT_EQ(t.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(t.dtype(), DType::u8);
  EXPECT_EQ(t.to_vector().back(), 255.f);
  std::string plain = temp_path("labels.idx");
  data::write_file_atomically(plain, idx_bytes({2}, std::string("\x00\x00\x00\x07\xff\xff\xff\xfe", 8), 0x0C));
  EXPECT_EQ(read_idx(plain).to_int32(), (std::vector<int32_t>{7, -2}));  // big-endian s32

  write_gz(p, idx_bytes({2, 2, 3}, "short"));
  try {
    read_idx(p);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
  write_gz(p, "\x12\x34\x08\x01");
  EXPECT_THROW(read_idx(p), std::runtime_error);
  EXPECT_THROW(read_idx(temp_path("missing.idx")), std::runtime_error);
  write_gz(p, idx_bytes({1}, "ab"));
  EXPECT_THROW(read_idx(p), std::runtime_error);  // trailing data
}

TEST(Npy, RoundTripsAndRejectsBadFiles) {
  std::string p = temp_path("t.npy");
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  write_npy(p, t);
  Tensor back = read_npy(p);
  EXPECT_EQ(back.shape(), t.shape());
  EXPECT_EQ(back.to_vector(), t.to_vector());
  write_npy(p, Tensor::from_int32({-1, 9}, {2}));
  EXPECT_EQ(read_npy(p).to_int32(), (std::vector<int32_t>{-1, 9}));
  data::write_file_atomically(p, "not numpy");
  EXPECT_THROW(read_npy(p), std::runtime_error);
  std::string good = data::read_file((write_npy(p, t), p));
  data::write_file_atomically(p, good.substr(0, good.size() - 3));
  EXPECT_THROW(read_npy(p), std::runtime_error);
}

TEST(Csv, ParsesAndReportsLineAndColumn) {
  std::string p = temp_path("t.csv");
  data::write_file_atomically(p, "a,b,c\n1,2,3\n4.5, 5,-6\n");
  CsvOptions opt;
  opt.header = true;
  Tensor t = read_csv(p, opt);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.to_vector(), (std::vector<float>{1, 2, 3, 4.5f, 5, -6}));
  data::write_file_atomically(p, "1,2\n3,x\n");
  try {
    read_csv(p);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2 column 2"), std::string::npos) << e.what();
  }
  data::write_file_atomically(p, "1,2\n3\n");
  EXPECT_THROW(read_csv(p), std::runtime_error);
}

TEST(FashionMnist, LoadsDebianDataset) {
  FashionMnist fm = load_fashion_mnist();
  EXPECT_EQ(fm.x_train.shape(), (Shape{60000, 28, 28, 1}));
  EXPECT_EQ(fm.y_train.shape(), (Shape{60000}));
  EXPECT_EQ(fm.x_test.shape(), (Shape{10000, 28, 28, 1}));
  std::vector<int> counts(10, 0);
  for (int32_t l : fm.y_test.to_int32()) counts[l]++;
  for (int c : counts) EXPECT_EQ(c, 1000);  // Fashion-MNIST's test set is balanced
  EXPECT_THROW(load_fashion_mnist(temp_path("nowhere")), std::runtime_error);
}

}  // namespace
}  // namespace kiln::data
