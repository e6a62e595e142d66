// The npy, IDX and CSV readers against hostile bytes: each case goes through parse_* (no
// files) and must end in a std::runtime_error naming the source and the fault, never a crash,
// std::bad_alloc or an allocation the bytes present do not justify.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <limits>
#include <random>
#include <typeinfo>

#include "data/atomic_file.h"
#include "data/csv.h"
#include "data/idx.h"
#include "data/npy.h"
#include "tensor/allocator.h"
#include "tests/temp_path.h"

namespace kiln::data {
namespace {

using kiln::testing::temp_path;

void expect_error(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << *parts.begin() << "'";
  } catch (const std::runtime_error& e) {
    for (const std::string& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected std::runtime_error, got " << typeid(e).name() << ": " << e.what();
  }
}

// Tensor memory comes only from the caching allocator; these counters show whether a
// rejected file made it allocate anything at all.
uint64_t tensor_allocations() {
  AllocatorStats s = allocator_stats();
  return s.system_allocations + s.cache_hits;
}

std::string le32(uint32_t v) {
  return {char(v), char(v >> 8), char(v >> 16), char(v >> 24)};
}

// numpy.lib.format._write_array_header/_wrap_header: the dict repr, spare spaces so the first
// axis can grow to 21 digits, then spaces and '\n' so data starts on a 64-byte boundary.
std::string numpy_npy(int major, const std::string& descr, const std::string& shape_repr, const std::string& first_dim,
                      const std::string& data) {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape_repr + ", }";
  if (shape_repr != "()") header.append(21 - first_dim.size(), ' ');
  size_t len_size = major == 1 ? 2 : 4;
  size_t hlen = header.size() + 1;
  size_t padlen = 64 - (8 + len_size + hlen) % 64;
  header.append(padlen, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY", 6) + char(major) + '\0';
  out += major == 1 ? le32(header.size()).substr(0, 2) : le32(header.size());
  return out + header + data;
}

// A v1 file with `dict` verbatim as its header text (no padding added unless given).
std::string raw_npy(const std::string& header_text, const std::string& data) {
  return std::string("\x93NUMPY\x01\x00", 8) + le32(header_text.size()).substr(0, 2) + header_text + data;
}

std::string floats(std::initializer_list<float> v) { return std::string(reinterpret_cast<const char*>(v.begin()), 4 * v.size()); }

const std::string kSix = floats({1, 2, 3, 4, 5, 6});

Tensor npy_with(const std::string& dict, const std::string& data = kSix) {
  return parse_npy(raw_npy(dict + "\n", data), "mem.npy");
}

TEST(NpyStrict, ReadsWhatNumpyWritesInEveryVersion) {
  for (int major : {1, 2, 3}) {
    std::string bytes = numpy_npy(major, "<f4", "(2, 3)", "2", kSix);
    EXPECT_EQ((bytes.size() - kSix.size()) % 64, 0u);
    Tensor t = parse_npy(bytes, "mem.npy");
    EXPECT_EQ(t.shape(), (Shape{2, 3})) << major;
    EXPECT_EQ(t.to_vector(), (std::vector<float>{1, 2, 3, 4, 5, 6})) << major;
  }
  EXPECT_EQ(parse_npy(numpy_npy(1, "<f4", "()", "", floats({7})), "m").shape(), Shape{});
  EXPECT_EQ(parse_npy(numpy_npy(1, "<f4", "(6,)", "6", kSix), "m").shape(), Shape{6});
  EXPECT_EQ(parse_npy(numpy_npy(1, "|u1", "(0, 3)", "0", ""), "m").shape(), (Shape{0, 3}));
  // Double quotes, any key order, no trailing comma, tuple trailing comma.
  EXPECT_EQ(npy_with("{\"shape\": (2, 3,), \"fortran_order\": False, \"descr\": \"<f4\"}").shape(), (Shape{2, 3}));
}

TEST(NpyStrict, RejectsMalformedDicts) {
  const std::string ok_tail = "'fortran_order': False, 'shape': (2, 3), }";
  expect_error([&] { npy_with("{'descr': '<f4', 'extra': 1, " + ok_tail); }, {"mem.npy", "unknown key 'extra'"});
  expect_error([&] { npy_with("{'descr': '<f4', 'descr': '<f4', " + ok_tail); }, {"mem.npy", "twice"});
  expect_error([&] { npy_with("{'descr': '<f4', 'shape': (2, 3), }"); }, {"mem.npy", "no 'fortran_order'"});
  expect_error([&] { npy_with("{'descr': '<f4' " + ok_tail); }, {"mem.npy", "expected ','"});
  expect_error([&] { npy_with("{'descr' '<f4', " + ok_tail); }, {"mem.npy", "expected ':'"});
  expect_error([&] { npy_with("{'descr': '<f4', " + ok_tail + " x"); }, {"mem.npy", "bytes after the dict"});
  expect_error([&] { npy_with("{'descr': '<f4', " + ok_tail + "}"); }, {"mem.npy", "bytes after the dict"});
  expect_error([&] { parse_npy(raw_npy("{'descr': '<f4', " + ok_tail, kSix), "mem.npy"); }, {"mem.npy", "newline"});
  expect_error([&] { npy_with("{'descr': '<f4', 'fortran_order': false, 'shape': (2, 3)}"); }, {"True or False"});
  expect_error([&] { npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3]}"); }, {"'('"});
  expect_error([&] { npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (6)}"); }, {"(n,)"});
  expect_error([&] { npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3.0)}"); }, {"expected ','"});
  expect_error([&] { npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (02, 3)}"); }, {"leading zero"});
  expect_error([&] { npy_with("{'descr': b'<f4', " + ok_tail); }, {"in quotes"});
  expect_error([&] { npy_with("{'descr': '<f4, " + ok_tail); }, {"mem.npy"});
  expect_error([&] { npy_with("{'descr': '<\\x66\x34', " + ok_tail); }, {"escape"});
}

TEST(NpyStrict, HugeOrNegativeShapesAreClearErrors) {
  uint64_t before = tensor_allocations();
  expect_error([] { npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }"); },
               {"mem.npy", "64 bits"});
  expect_error([] { npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }"); },
               {"mem.npy", "truncated", "4398046511104"});
  expect_error([] { npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }"); },
               {"mem.npy", "too large"});
  expect_error([] { npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }"); }, {"mem.npy", "negative"});
  EXPECT_EQ(tensor_allocations(), before);
}

TEST(NpyStrict, HeaderAndDataMustFitExactly) {
  std::string good = numpy_npy(1, "<f4", "(2, 3)", "2", kSix);
  std::string past_end = good.substr(0, 8) + le32(5000).substr(0, 2) + good.substr(10);
  expect_error([&] { parse_npy(past_end, "mem.npy"); }, {"mem.npy", "5000-byte header"});
  expect_error([&] { parse_npy(good.substr(0, 9), "mem.npy"); }, {"mem.npy", "truncated"});
  expect_error([&] { parse_npy(good + "x", "mem.npy"); }, {"mem.npy", "bytes after the array"});
  expect_error([&] { parse_npy(good.substr(0, good.size() - 1), "mem.npy"); }, {"mem.npy", "truncated"});
  std::string v2 = numpy_npy(2, "<f4", "(2, 3)", "2", kSix);
  v2[11] = 1;  // header length 16 MiB
  expect_error([&] { parse_npy(v2, "mem.npy"); }, {"mem.npy", "header"});
}

TEST(NpyStrict, RejectsVersionsDtypesAndOrders) {
  std::string good = numpy_npy(1, "<f4", "(2, 3)", "2", kSix);
  std::string bad = good;
  bad[7] = 1;
  expect_error([&] { parse_npy(bad, "mem.npy"); }, {"mem.npy", "version 1.1"});
  bad = good;
  bad[6] = 4;
  expect_error([&] { parse_npy(bad, "mem.npy"); }, {"mem.npy", "version 4.0"});
  expect_error([] { parse_npy("\x93NUMPZ\x01\x00", "mem.npy"); }, {"mem.npy", "magic"});
  for (const char* descr : {"|b1", ">f4", "<f2", "<u4", "O"}) {
    expect_error([&] { parse_npy(numpy_npy(1, descr, "(2, 3)", "2", kSix), "mem.npy"); }, {"mem.npy", "unsupported dtype"});
  }
  expect_error([] { npy_with("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }"); }, {"mem.npy", "Fortran"});
  std::string v3 = numpy_npy(3, "<f4", "(2, 3)", "2", kSix);
  v3[13] = '\xff';  // never valid in UTF-8
  expect_error([&] { parse_npy(v3, "mem.npy"); }, {"mem.npy", "UTF-8"});
}

TEST(NpyStrict, ConvertsWideTypesWithRangeChecks) {
  auto i64 = [](std::initializer_list<int64_t> v) { return std::string(reinterpret_cast<const char*>(v.begin()), 8 * v.size()); };
  auto f64 = [](std::initializer_list<double> v) { return std::string(reinterpret_cast<const char*>(v.begin()), 8 * v.size()); };
  EXPECT_EQ(parse_npy(numpy_npy(1, "<i8", "(2,)", "2", i64({-5, 2147483647})), "m").to_int32(),
            (std::vector<int32_t>{-5, 2147483647}));
  expect_error([&] { parse_npy(numpy_npy(1, "<i8", "(2,)", "2", i64({1, int64_t{1} << 31})), "mem.npy"); },
               {"mem.npy", "does not fit s32"});
  Tensor f = parse_npy(numpy_npy(1, "<f8", "(2,)", "2", f64({0.5, std::numeric_limits<double>::infinity()})), "m");
  EXPECT_EQ(f.to_vector()[0], 0.5f);
  EXPECT_TRUE(std::isinf(f.to_vector()[1]));
  expect_error([&] { parse_npy(numpy_npy(1, "<f8", "(1,)", "1", f64({1e300})), "mem.npy"); }, {"mem.npy", "does not fit f32"});
}

TEST(NpyStrict, FileRoundTrip) {
  std::string p = temp_path("strict.npy");
  for (Tensor t : {Tensor::from_vector({1, -2, 3.5f, 4, 5, 6}, {3, 2}), Tensor::from_int32({-7, 8}, {2}),
                   Tensor::from_vector({3, 200}, {2}, DType::u8), Tensor::from_vector({-3, 100}, {1, 2}, DType::s8),
                   Tensor::scalar(2.5f), Tensor::zeros({0, 4})}) {
    write_npy(p, t);
    Tensor back = read_npy(p);
    EXPECT_EQ(back.shape(), t.shape());
    EXPECT_EQ(back.dtype(), t.dtype());
    EXPECT_EQ(back.to_vector(), t.to_vector());
  }
  expect_error([&] { read_npy(temp_path("no_such.npy")); }, {"no_such.npy"});
}

// ---- IDX ----

std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

std::string idx_bytes(unsigned char type, const std::vector<uint32_t>& dims, const std::string& data) {
  std::string s = {0, 0, char(type), char(dims.size())};
  for (uint32_t d : dims) s += be32(d);
  return s + data;
}

std::string gzip(const std::string& bytes) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, bytes.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = bytes.size();
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = out.size();
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

TEST(IdxStrict, DecodesBigEndianPlainAndGzip) {
  std::string s32 = idx_bytes(0x0C, {2}, be32(7) + be32(uint32_t(-2)));
  EXPECT_EQ(parse_idx(s32, "m").to_int32(), (std::vector<int32_t>{7, -2}));
  EXPECT_EQ(parse_idx(gzip(s32), "m").to_int32(), (std::vector<int32_t>{7, -2}));
  std::string f32 = idx_bytes(0x0D, {1, 1}, std::string("\x3f\xc0\x00\x00", 4));  // 1.5
  EXPECT_EQ(parse_idx(gzip(f32), "m").to_vector(), std::vector<float>{1.5f});
  Tensor s8 = parse_idx(idx_bytes(0x09, {3}, "\xff\x01\x80"), "m");
  EXPECT_EQ(s8.dtype(), DType::s8);
  EXPECT_EQ(s8.to_vector(), (std::vector<float>{-1, 1, -128}));
  EXPECT_EQ(parse_idx(gzip(idx_bytes(0x08, {0, 5}, "")), "m").shape(), (Shape{0, 5}));
}

TEST(IdxStrict, RejectsBadHeaders) {
  expect_error([] { parse_idx(idx_bytes(0x0B, {1}, "ab"), "mem.idx"); }, {"mem.idx", "0x0B", "int16"});
  expect_error([] { parse_idx(idx_bytes(0x0E, {1}, "12345678"), "mem.idx"); }, {"mem.idx", "0x0E", "float64"});
  expect_error([] { parse_idx(idx_bytes(0x07, {1}, "a"), "mem.idx"); }, {"mem.idx", "unknown element type 0x07"});
  expect_error([] { parse_idx(idx_bytes(0x08, {}, ""), "mem.idx"); }, {"mem.idx", "0 dimensions"});
  expect_error([] { parse_idx(idx_bytes(0x08, std::vector<uint32_t>(9, 1), "a"), "mem.idx"); }, {"mem.idx", "9 dimensions"});
  expect_error([] { parse_idx(std::string("\x01\x00\x08\x01", 4), "mem.idx"); }, {"mem.idx", "magic"});
  expect_error([] { parse_idx(std::string("\x00\x00\x08\x02\x00\x00", 6), "mem.idx"); }, {"mem.idx", "dimensions"});
  expect_error([] { parse_idx("", "mem.idx"); }, {"mem.idx", "too short"});
  uint64_t before = tensor_allocations();
  for (bool gz : {false, true}) {
    std::string overflow = idx_bytes(0x0D, {0xffffffff, 0xffffffff, 0xffffffff}, "");
    expect_error([&] { parse_idx(gz ? gzip(overflow) : overflow, "mem.idx"); }, {"mem.idx", "64 bits"});
  }
  EXPECT_EQ(tensor_allocations(), before);
}

TEST(IdxStrict, LyingSizeDoesNotAllocate) {
  std::string lie = idx_bytes(0x0D, {1u << 31}, "0123456789");  // 8 GiB declared, 10 bytes present
  uint64_t before = tensor_allocations();
  expect_error([&] { parse_idx(lie, "mem.idx"); }, {"mem.idx", "truncated", "8589934592"});
  expect_error([&] { parse_idx(gzip(lie), "mem.idx"); }, {"mem.idx", "truncated", "8589934592"});
  EXPECT_EQ(tensor_allocations(), before);
}

TEST(IdxStrict, SizeMustMatchExactly) {
  std::string good = idx_bytes(0x08, {2, 3}, "abcdef");
  EXPECT_EQ(parse_idx(good, "m").shape(), (Shape{2, 3}));
  expect_error([&] { parse_idx(good + "g", "mem.idx"); }, {"mem.idx", "1 bytes beyond"});
  expect_error([&] { parse_idx(good.substr(0, good.size() - 1), "mem.idx"); }, {"mem.idx", "truncated"});
  expect_error([&] { parse_idx(gzip(good + "g"), "mem.idx"); }, {"mem.idx", "beyond the declared shape"});
  expect_error([&] { parse_idx(gzip(good.substr(0, good.size() - 1)), "mem.idx"); }, {"mem.idx", "truncated"});
}

TEST(IdxStrict, GzipMustEndCleanly) {
  std::string good = idx_bytes(0x08, {2, 3}, "abcdef");
  std::string gz = gzip(good);
  expect_error([&] { parse_idx(gz.substr(0, gz.size() - 8), "mem.idx"); }, {"mem.idx", "truncated gzip stream"});
  expect_error([&] { parse_idx(gz.substr(0, gz.size() / 2), "mem.idx"); }, {"mem.idx", "truncated gzip stream"});
  expect_error([&] { parse_idx(gz + "garbage", "mem.idx"); }, {"mem.idx", "after the end of the gzip stream"});
  expect_error([&] { parse_idx(gz + '\0', "mem.idx"); }, {"mem.idx", "after the end of the gzip stream"});
  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 8] ^= 1;
  expect_error([&] { parse_idx(bad_crc, "mem.idx"); }, {"mem.idx", "corrupt gzip"});
  std::string bad_len = gz;
  bad_len[bad_len.size() - 1] ^= 1;
  expect_error([&] { parse_idx(bad_len, "mem.idx"); }, {"mem.idx", "corrupt gzip"});
  // Concatenated members (`cat a.gz b.gz`) are one stream, split anywhere, even mid-header.
  Tensor t = parse_idx(gzip(good.substr(0, 5)) + gzip("") + gzip(good.substr(5)), "m");
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.to_vector().back(), float('f'));
  expect_error([&] { parse_idx(gz + gzip("x"), "mem.idx"); }, {"mem.idx", "beyond the declared shape"});
}

TEST(IdxStrict, GzipFileRoundTrip) {
  std::string p = temp_path("strict.idx.gz");
  std::string data(28 * 28 * 3, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 7);
  std::string bytes = idx_bytes(0x08, {3, 28, 28}, data);
  gzFile f = gzopen(p.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
  Tensor t = read_idx(p);
  EXPECT_EQ(t.shape(), (Shape{3, 28, 28}));
  EXPECT_EQ(std::memcmp(t.raw_data(), data.data(), data.size()), 0);
  expect_error([&] { read_idx(temp_path("no_such.idx")); }, {"no_such.idx"});
}

// ---- CSV ----

TEST(CsvStrict, RejectsBadCellsNamingLineAndColumn) {
  expect_error([] { parse_csv(std::string("1,2\n3,\0\n", 8), "mem.csv"); }, {"mem.csv", "line 2 column 2", "NUL"});
  expect_error([] { parse_csv(std::string("a\0,b\n1,2\n", 9), "mem.csv", {.header = true}); }, {"line 1 column 1", "NUL"});
  expect_error([] { parse_csv("1,,2\n", "mem.csv"); }, {"mem.csv", "line 1 column 2", "empty cell"});
  expect_error([] { parse_csv("1,2\n3,4,\n", "mem.csv"); }, {"mem.csv", "line 2 column 3", "empty cell"});
  expect_error([] { parse_csv("1,2\n3, \n", "mem.csv"); }, {"line 2 column 2", "empty cell"});
  expect_error([] { parse_csv("1,1e999\n", "mem.csv"); }, {"mem.csv", "line 1 column 2", "'1e999'", "out of f32 range"});
  expect_error([] { parse_csv("-1e39\n", "mem.csv"); }, {"out of f32 range"});
  for (const char* cell : {"0x10", "1.5abc", "1e", "--1", "+", ".", "nan(1)", "1 2", "5e+", "0b1", "infx"}) {
    expect_error([&] { parse_csv(std::string("7,") + cell + "\n", "mem.csv"); }, {"mem.csv", "line 1 column 2", "not a"});
  }
}

TEST(CsvStrict, AcceptsWhatLoadtxtAccepts) {
  Tensor t = parse_csv("nan, -inf ,Infinity\r\n\r\n  \n+2.5,.5,1e-50\r\n3.,1E2,-0\n", "m");
  EXPECT_EQ(t.shape(), (Shape{3, 3}));
  std::vector<float> v = t.to_vector();
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_EQ(v[1], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ((std::vector<float>(v.begin() + 3, v.end())), (std::vector<float>{2.5f, 0.5f, 0.f, 3.f, 100.f, -0.f}));
  EXPECT_EQ(parse_csv("1\t2\n3\t4", "m", {.delimiter = '\t'}).to_vector(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(parse_csv("1 2\n3 4\n", "m", {.delimiter = ' '}).shape(), (Shape{2, 2}));
}

TEST(CsvStrict, RejectsRaggedAndEmptyTables) {
  expect_error([] { parse_csv("1,2\n\n3\n", "mem.csv"); }, {"mem.csv", "line 3 has 1 columns, expected 2"});
  expect_error([] { parse_csv("a,b\n", "mem.csv", {.header = true}); }, {"mem.csv", "no data rows"});
  expect_error([] { parse_csv("a,b\n\n \n", "mem.csv", {.header = true}); }, {"mem.csv", "no data rows"});
  expect_error([] { parse_csv("", "mem.csv"); }, {"mem.csv", "no data rows"});
  expect_error([] { parse_csv("1.2\n", "mem.csv", {.delimiter = '.'}); }, {"mem.csv", "delimiter"});
}

TEST(CsvStrict, FileRoundTrip) {
  std::string p = temp_path("strict.csv");
  write_file_atomically(p, "x,y\n1,2\n3,4\n");
  Tensor t = read_csv(p, {.header = true});
  EXPECT_EQ(t.shape(), (Shape{2, 2}));
  EXPECT_EQ(t.to_vector(), (std::vector<float>{1, 2, 3, 4}));
  expect_error([&] { read_csv(temp_path("no_such.csv")); }, {"no_such.csv"});
}

// ---- all three ----

// A cheap stand-in for the fuzz targets: flipped bytes, cuts and splices of valid files may
// only end in a value or a std::runtime_error (asan/ubsan catch the rest).
TEST(LoadersStrict, SurviveMutatedInputs) {
  std::mt19937 rng(7);
  std::vector<std::pair<std::string, std::function<void(const std::string&)>>> seeds = {
      {numpy_npy(1, "<f4", "(2, 3)", "2", kSix), [](const std::string& b) { parse_npy(b, "m"); }},
      {numpy_npy(3, "<i8", "(1,)", "1", std::string(8, '\1')), [](const std::string& b) { parse_npy(b, "m"); }},
      {gzip(idx_bytes(0x0D, {2, 2}, std::string(16, 'a'))), [](const std::string& b) { parse_idx(b, "m"); }},
      {idx_bytes(0x0C, {3}, std::string(12, 'b')), [](const std::string& b) { parse_idx(b, "m"); }},
      {"1,2.5e3\r\n-inf,nan\n", [](const std::string& b) { parse_csv(b, "m"); }},
  };
  for (auto& [seed, parse] : seeds) {
    for (int i = 0; i < 3000; ++i) {
      std::string b = seed;
      for (int k = 1 + rng() % 3; k > 0; --k) {
        size_t at = rng() % b.size();
        switch (rng() % 4) {
          case 0: b[at] = char(rng()); break;
          case 1: b[at] ^= char(1 << (rng() % 8)); break;
          case 2: b.resize(at); break;
          default: b.insert(at, 1, char(rng())); break;
        }
        if (b.empty()) b = "x";
      }
      try {
        parse(b);
      } catch (const std::runtime_error&) {
      } catch (const std::exception& e) {
        ADD_FAILURE() << typeid(e).name() << ": " << e.what();
      }
    }
  }
}

}  // namespace
}  // namespace kiln::data
